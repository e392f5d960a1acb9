"""Corpora: split lists cannot lead outside the corpus root; the synthetic corpus's documented minimum works."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from harness.cli import main
from plugins.corpora.synthetic import SPLITS, SyntheticParams, _draw_plan, make_plan


@pytest.fixture()
def vox_root(tmp_path: Path) -> Path:
    root = tmp_path / "vox"
    wav = (0.3 * np.sin(np.arange(16000) / 5)).astype(np.float32)
    for rel in ("wav/id1/v/00001.wav", "wav/id2/v/00001.wav"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / rel, wav, 16000)
    (tmp_path / "elsewhere").mkdir()
    sf.write(tmp_path / "elsewhere" / "x.wav", wav, 16000)
    return root


@pytest.mark.parametrize("entry", ["../../elsewhere/x.wav", "ABSOLUTE"])
def test_a_split_list_naming_a_file_outside_the_root_is_refused(vox_root, tmp_path, capsys, entry):
    entry = str(tmp_path / "elsewhere" / "x.wav") if entry == "ABSOLUTE" else entry
    (vox_root / "iden_split.txt").write_text(f"1 id1/v/00001.wav\n2 id2/v/00001.wav\n3 {entry}\n")
    out = tmp_path / "prepared"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code = main(["prepare", "voxceleb1", "--out", str(out), "--param", f"root={vox_root}", "--force"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"voxceleb1: split 'test' names {vox_root / 'wav' / entry}, which lies outside the corpus root " \
           f"{vox_root}; a split list may only name files under the root" in err
    assert not (out / "test.jsonl").exists()


def test_a_split_list_inside_the_root_still_prepares(vox_root, tmp_path, capsys):
    (vox_root / "iden_split.txt").write_text("1 id1/v/00001.wav\n2 id2/v/00001.wav\n3 id2/v/00001.wav\n")
    assert main(["prepare", "voxceleb1", "--out", str(tmp_path / "p"), "--param", f"root={vox_root}"]) == 0, \
        capsys.readouterr().err
    assert (tmp_path / "p" / "test.jsonl").is_file()


@pytest.mark.parametrize("n", [8, 9, 40])
def test_synthetic_plans_fill_every_split_down_to_the_documented_minimum(n):
    assert SyntheticParams.model_fields["n_utterances"].metadata[0].ge == 8
    specs = make_plan(SyntheticParams(n_utterances=n))
    counts = Counter(s.split for s in specs)
    assert set(counts) == set(SPLITS) and sum(counts.values()) == n
    assert len({s.speaker for s in specs if s.split == "train"}) >= 2


def test_synthetic_plans_that_fill_every_split_are_unchanged():
    for n in (84, 400):
        p = SyntheticParams(n_utterances=n)
        assert make_plan(p) == _draw_plan(p)
        assert len({s.speaker for s in make_plan(p)}) == p.n_speakers + p.n_unseen_speakers
