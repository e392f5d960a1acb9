"""Audio that is not audio, holds absurd values or was cut short: named in one sentence or a warning."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile as sf

from harness.cli import main
from harness.core.errors import AudioError
from harness.data import audio


def _tone(n: int = 16000) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * 220 * np.arange(n) / 16000)).astype(np.float32)


def test_random_bytes_are_reported_as_not_audio_and_a_missing_file_as_missing(tmp_path):
    noise = tmp_path / "noise.wav"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(AudioError) as err:
        audio.load(noise)
    assert str(err.value) == (f"audio file {noise} is not audio (no format soundfile reads recognises it); "
                              "replace or remove it.")
    assert err.value.exit_code == 2
    with pytest.raises(AudioError, match="does not exist or is not a regular file; check the path"):
        audio.info(tmp_path / "gone.wav")


@pytest.mark.parametrize("value", [1e30, -1e30, 1e3])
def test_samples_far_beyond_full_scale_are_refused_not_clipped(tmp_path, value):
    path = tmp_path / "loud.wav"
    wav = _tone()
    wav[100] = value
    sf.write(path, wav, 16000, subtype="FLOAT")
    with pytest.raises(AudioError) as err:
        audio.load(path)
    assert f"has samples up to {abs(value):.3g}, far beyond full scale" in str(err.value)
    assert str(err.value).endswith("re-export it as normalised audio.")
    wav[100] = 1.5  # a little over full scale is audio that was mixed hot: kept as it is
    sf.write(path, wav, 16000, subtype="FLOAT")
    assert audio.load(path)[100] == pytest.approx(1.5)


def test_a_truncated_wav_is_read_with_a_warning_naming_it(tmp_path, caplog):
    full = tmp_path / "full.wav"
    sf.write(full, _tone(), 16000, subtype="PCM_16")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(full.read_bytes()[:16044])  # header + 8000 samples of 16000
    assert not audio.info(full).truncated
    with caplog.at_level(logging.WARNING, logger="harness.data.audio"):
        wav = audio.load(cut)
        audio.load(cut)
    assert len(wav) == 8000
    warnings = [r.getMessage() for r in caplog.records if "truncated" in r.getMessage()]
    assert warnings == [f"audio file {cut} is truncated: its header declares more samples than it holds; only the "
                        "8000 present (0.50 s) are used (copy or re-export it to get all of it)."]


def test_extract_over_bad_audio_exits_2_and_keeps_earlier_output(tmp_path, capsys):
    audio_dir = tmp_path / "audio"
    audio_dir.mkdir()
    (audio_dir / "noise.wav").write_bytes(np.random.default_rng(1).bytes(4096))
    out = tmp_path / "feats"
    out.mkdir()
    (out / "earlier.npy").write_bytes(b"kept")
    code = main(["extract", "--upstream", "fbank", "--audio-dir", str(audio_dir), "--layer", "0",
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "noise.wav is not audio" in err and "Traceback" not in err
    assert (out / "earlier.npy").read_bytes() == b"kept"
