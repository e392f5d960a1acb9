"""ABX item files of a corpus: one per named split, optionally over further splits' rows."""

from __future__ import annotations

import json
import random

from harness.data.corpus import CorpusRows, sample_hours, write_corpus


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


def test_sample_hours_stays_within_the_budget_keeps_every_speaker_and_ignores_row_order():
    rng = random.Random(0)
    rows = [{"id": f"s{k}-{i}", "speaker": f"s{k}", "duration": rng.uniform(5, 15)}
            for k in range(20) for i in range(30)]
    picked = sample_hours(rows, hours=0.5, seed=3, keep_speakers=True)
    total = sum(r["duration"] for r in picked)
    assert total <= 1800 and total > 1800 - 15  # drawn until the next row would pass half an hour
    assert {r["speaker"] for r in picked} == {f"s{k}" for k in range(20)}
    assert picked == [r for r in rows if r in picked]  # in the rows' order
    shuffled = rows[:]
    rng.shuffle(shuffled)
    assert sorted(r["id"] for r in sample_hours(shuffled, 0.5, 3, True)) == sorted(r["id"] for r in picked)
    assert sample_hours(rows, 0.5, 4, True) != picked  # another seed, another subset
    # without keep_speakers a tight budget may leave speakers out; all rows fit a large one
    assert len({r["speaker"] for r in sample_hours(rows, 100 / 3600, 3)}) < 20
    assert sample_hours(rows, 100, 3) == rows
