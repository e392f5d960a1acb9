"""Hostile inputs to the building-block commands: one sentence and exit code 2, JSON that is JSON, no
traceback when the reader of a pipe leaves, and no input ever replaced by an output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.core.store import Store
from tests.core_helpers import toy_manager

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def toy_prepare(monkeypatch):
    manager = toy_manager()
    monkeypatch.setattr("harness.cli.prepare_cmd.default_manager", lambda: manager)


@pytest.mark.parametrize("where", ["is", "inside", "contains"])
def test_prepare_refuses_an_out_that_overlaps_its_input_and_deletes_nothing(where, tmp_path, toy_prepare, capsys):
    root = tmp_path / "corpus" / "audio"
    root.mkdir(parents=True)
    (root / "a.wav").write_bytes(b"RIFF")
    out = {"is": root, "inside": root / "prepared", "contains": tmp_path / "corpus"}[where]
    code = main(["prepare", "toy_corpus", "--out", str(out), "--param", f"root={root}", "--force"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"--out {out} is, contains or lies inside the input root={root}; choose an --out outside" in err
    assert (root / "a.wav").read_bytes() == b"RIFF"


def test_prepare_refuses_an_out_that_is_a_file(tmp_path, toy_prepare, capsys):
    out = tmp_path / "x"
    out.write_text("mine")
    assert main(["prepare", "toy_corpus", "--out", str(out), "--force"]) == 2
    assert f"{out} is a file, not a folder; choose another --out." in capsys.readouterr().err
    assert out.read_text() == "mine"


@pytest.mark.parametrize("value", ["nan", ".nan", "inf"])
def test_merge_refuses_a_non_finite_alpha_before_reading_any_model(value, tmp_path, capsys):
    code = main(["merge", "--method", "linear", "--base", str(tmp_path / "b.safetensors"), "--models",
                 str(tmp_path / "m.safetensors"), "--param", f"alpha={value}", "--out", str(tmp_path / "o")])
    assert code == 2
    assert "merge linear.alpha: input should be a finite number" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.fixture()
def one_speaker_abx(tmp_path):
    """Two files of one speaker: the across-speaker conditions have no triplet, so no score."""
    feats = tmp_path / "feats"
    feats.mkdir()
    rng = np.random.default_rng(0)
    for name in ("f1", "f2"):
        np.save(feats / f"{name}.npy", rng.standard_normal((50, 3)).astype(np.float32))
    lines = ["#file onset offset #phone prev-phone next-phone speaker"]
    for name in ("f1", "f2"):
        for i, phone in enumerate("abab"):
            lines.append(f"{name} {0.1 * i:.2f} {0.1 * i + 0.08:.2f} {phone} x y s1")
    (tmp_path / "x.item").write_text("\n".join(lines) + "\n")
    return ["abx", "--features", str(feats), "--item", str(tmp_path / "x.item"), "--frame-shift", "0.01"]


def test_abx_json_writes_null_where_a_condition_has_no_score(one_speaker_abx, capsys):
    assert main([*one_speaker_abx, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)  # strict JSON: a bare NaN would not parse back as null
    across = [r for r in rows if r["speaker"] == "across"]
    assert across and all(r["score"] is None for r in across)
    assert all(isinstance(r["score"], float) for r in rows if r["speaker"] == "within")


def test_abx_refuses_a_binary_item_file(one_speaker_abx, tmp_path, capsys):
    (tmp_path / "x.item").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe" * 10)
    assert main(one_speaker_abx) == 2
    err = capsys.readouterr().err
    assert "x.item is not UTF-8 text (byte 0); give the libri-light .item text file" in err


def test_abx_refuses_a_npy_whose_header_claims_more_than_the_file_holds(one_speaker_abx, tmp_path, capsys):
    path = tmp_path / "feats" / "f1.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False,
                                                 "shape": (1_000_000_000, 192)})
        f.write(b"\0" * 1000)
    assert main(one_speaker_abx) == 2
    err = capsys.readouterr().err
    assert f"{path} claims a (1000000000, 192) float32 array (768,000,000,128 bytes) but holds" in err
    assert "write the features again." in err


def test_results_json_into_a_closed_pipe_ends_quietly(tmp_path):
    out = tmp_path / "out"
    with Store(out):
        pass
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "results", str(out), "--json"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    proc.stdout.close()  # the reader left before a byte was written, as `| head -0` does
    err = proc.stderr.read().decode()
    assert proc.wait() == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err
