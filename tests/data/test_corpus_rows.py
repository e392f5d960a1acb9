"""ABX item files of a corpus: one per named split, optionally over further splits' rows."""

from __future__ import annotations

import json

from harness.data.corpus import CorpusRows, write_corpus


def _row(uid: str, speaker: str) -> dict:
    phones = [["sil", 0.0, 0.1], ["b", 0.1, 0.2], ["aa", 0.2, 0.3], ["b", 0.3, 0.4], ["sil", 0.4, 0.5]]
    return {"id": uid, "path": f"{uid}.wav", "duration": 0.5, "speaker": speaker, "phones": phones}


def test_item_file_covers_its_split_and_the_extra_splits_named_for_it(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    splits = {"dev": [_row("d1", "s1")], "test": [_row("t1", "s1")], "test_unseen": [_row("u1", "u9")]}
    write_corpus(tmp_path / "a", "toy", CorpusRows(splits, abx_splits=("dev", "test")))
    write_corpus(tmp_path / "b", "toy", CorpusRows(splits, abx_splits=("dev", "test"),
                                                   abx_extra_splits={"test": ("test_unseen",)}))

    def files(root, split):
        return [line.split()[0] for line in (root / f"{split}.item").read_text().splitlines()[1:]]

    assert files(tmp_path / "a", "test") == ["t1"]
    assert files(tmp_path / "b", "test") == ["t1", "u1"]
    assert files(tmp_path / "b", "dev") == files(tmp_path / "a", "dev") == ["d1"]
    meta = json.loads((tmp_path / "b" / "meta.json").read_text())
    assert meta["abx_item_counts"] == {"dev": 1, "test": 2}
