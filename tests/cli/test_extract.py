"""`harness extract`: one .npy per audio file, [T, D] for a layer, [L, T, D] for all; bad input -> exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from harness.cli import main
from harness.data import audio
from harness.models.model_io import save_model
from plugins.upstreams.hubert import HubertParams, HubertPlugin


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("audio")
    (root / "sub").mkdir()
    rng = np.random.default_rng(0)
    t = np.arange(40000) / 16000
    speech = (0.3 * np.sin(2 * np.pi * 150 * t) * np.sin(2 * np.pi * 3 * t)).astype(np.float32)
    sf.write(root / "a.wav", speech[:16000] + 0.01 * rng.standard_normal(16000).astype(np.float32), 16000)
    sf.write(root / "sub" / "b.wav", speech[:27000], 16000)
    stereo = np.stack([speech[:30000], 0.5 * speech[:30000]], axis=1)
    sf.write(root / "c.flac", stereo, 22050)  # resampled and mixed to mono on the way
    (root / "notes.txt").write_text("not audio")
    return root


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> tuple[Path, torch.nn.Module]:
    model = HubertPlugin().build(HubertParams(preset="tiny"), seed=0)
    folder = tmp_path_factory.mktemp("model") / "hubert-tiny"
    save_model(model, folder)
    return folder, model


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["extract", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_all_layers_one_file_each(capsys, audio_dir, model_dir, tmp_path):
    folder, model = model_dir
    rc, out, _ = _run(capsys, "--upstream", "hubert", "--checkpoint", str(folder), "--audio-dir", str(audio_dir),
                      "--layer", "all", "--out", str(tmp_path / "feats"), "--max-seconds", "2")
    assert rc == 0 and "wrote 3 files" in out
    assert sorted(p.name for p in (tmp_path / "feats").glob("*.npy")) == ["a.npy", "b.npy", "c.npy"]
    for path in [audio_dir / "a.wav", audio_dir / "sub" / "b.wav", audio_dir / "c.flac"]:
        saved = np.load(tmp_path / "feats" / f"{path.stem}.npy")
        wav = torch.from_numpy(audio.load(path))[None]
        with torch.no_grad():
            ref = model(wav, torch.tensor([wav.shape[1]]))
        assert saved.dtype == np.float32
        assert saved.shape == (model.num_hidden_states, int(ref.lengths[0]), model.hidden_size)
        expected = torch.stack([h[0] for h in ref.hidden_states]).numpy()
        assert np.abs(saved - expected).max() <= 1e-4 * np.abs(expected).max()


def test_one_layer_and_preset(capsys, audio_dir, model_dir, tmp_path):
    rc, _, _ = _run(capsys, "--upstream", "hubert", "--preset", "tiny", "--seed", "0", "--audio-dir", str(audio_dir),
                    "--layer", "-1", "--out", str(tmp_path / "last"))
    assert rc == 0
    rc, _, _ = _run(capsys, "--upstream", "hubert", "--checkpoint", str(model_dir[0]), "--audio-dir", str(audio_dir),
                    "--layer", "3", "--out", str(tmp_path / "three"))
    assert rc == 0
    last, three = np.load(tmp_path / "last" / "b.npy"), np.load(tmp_path / "three" / "b.npy")
    assert last.ndim == 2 and last.shape[1] == 96
    np.testing.assert_allclose(last, three, atol=1e-6)  # preset seed 0 == the saved seed-0 model
    assert json.loads((tmp_path / "last" / "extract.json").read_text())["precision"] == "fp32"


def test_a_cuda_precision_asked_on_the_cpu_extracts_in_fp32(capsys, audio_dir, tmp_path):
    argv = ["--upstream", "hubert", "--preset", "tiny", "--audio-dir", str(audio_dir), "--layer", "-1",
            "--device", "cpu"]
    assert _run(capsys, *argv, "--out", str(tmp_path / "fp32"))[0] == 0
    assert _run(capsys, *argv, "--out", str(tmp_path / "bf16"), "--precision", "bf16")[0] == 0
    assert json.loads((tmp_path / "bf16" / "extract.json").read_text())["precision"] == "fp32"
    for name in ("a", "b", "c"):
        assert np.array_equal(np.load(tmp_path / "fp32" / f"{name}.npy"), np.load(tmp_path / "bf16" / f"{name}.npy"))


def test_fbank_needs_no_source(capsys, audio_dir, tmp_path):
    rc, out, _ = _run(capsys, "--upstream", "fbank", "--audio-dir", str(audio_dir), "--layer", "0",
                      "--out", str(tmp_path / "fb"))
    assert rc == 0 and "frame shift 0.01 s" in out
    assert np.load(tmp_path / "fb" / "a.npy").shape == (98, 240)


def _error(capsys, *argv: str) -> str:
    rc, _, err = _run(capsys, *argv)
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert rc == 2 and len(lines) == 1, err
    return lines[0]


def test_bad_inputs_exit_2_with_one_sentence(capsys, audio_dir, model_dir, tmp_path):
    out = str(tmp_path / "o")
    ok = ["--upstream", "hubert", "--preset", "tiny", "--out", out]
    assert "is not a folder" in _error(capsys, *ok, "--audio-dir", str(tmp_path / "none"))
    (tmp_path / "empty").mkdir()
    assert "holds no audio files" in _error(capsys, *ok, "--audio-dir", str(tmp_path / "empty"))
    assert "out of range: hubert (preset tiny) has 4 hidden states" in _error(
        capsys, *ok, "--audio-dir", str(audio_dir), "--layer", "4")
    assert "neither an integer nor 'all'" in _error(capsys, *ok, "--audio-dir", str(audio_dir), "--layer", "last")
    assert "did you mean 'hubert'" in _error(
        capsys, "--upstream", "hubbert", "--preset", "tiny", "--audio-dir", str(audio_dir), "--out", out)
    assert "give exactly one of checkpoint" in _error(
        capsys, "--upstream", "hubert", "--audio-dir", str(audio_dir), "--out", out)
    assert "does not exist" in _error(
        capsys, "--upstream", "hubert", "--checkpoint", str(tmp_path / "x.pt"), "--audio-dir", str(audio_dir),
        "--out", out)
    dup = tmp_path / "dup"
    (dup / "x").mkdir(parents=True)
    sf.write(dup / "u.wav", np.ones(800, dtype=np.float32) * 0.1, 16000)
    sf.write(dup / "x" / "u.flac", np.ones(800, dtype=np.float32) * 0.1, 16000)
    assert "share the stem 'u'" in _error(capsys, *ok, "--audio-dir", str(dup))
    short = tmp_path / "short"
    short.mkdir()
    sf.write(short / "s.wav", np.ones(100, dtype=np.float32) * 0.1, 16000)
    assert "shorter than one model frame" in _error(capsys, *ok, "--audio-dir", str(short))
    assert not Path(out).exists()


def test_a_checkpoint_with_code_is_refused(capsys, audio_dir, tmp_path):
    import os

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"model": {}, "cfg": Payload()}, tmp_path / "evil.pt")
    message = _error(capsys, "--upstream", "wav2vec2", "--checkpoint", str(tmp_path / "evil.pt"),
                     "--audio-dir", str(audio_dir), "--out", str(tmp_path / "o"))
    assert "was refused" in message and "posix.system" in message
    assert not marker.exists()
