"""harness.data.audio: reading, downmixing, resampling, header durations and every bad-audio case."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile as sf

from harness.core.errors import AudioError
from harness.data import audio


def tone(seconds: float, sr: int, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = 0.5 * np.sin(2 * np.pi * freq * t)
    return np.stack([x, 0.5 * x], axis=1) if channels == 2 else x


def test_load_downmixes_and_resamples_to_16k_float32(tmp_path):
    path = tmp_path / "stereo.flac"
    sf.write(path, tone(1.5, 44100, 1000.0, channels=2), 44100)
    wav = audio.load(path)
    assert wav.dtype == np.float32 and wav.ndim == 1
    assert abs(len(wav) - 24000) <= 1
    # the mean of the two channels (0.5 and 0.25 amplitude) keeps the 1 kHz tone at amplitude 0.375
    spectrum = np.abs(np.fft.rfft(wav[4000:20000]))
    assert np.argmax(spectrum) * 16000 / 16000 == pytest.approx(1000, abs=1)
    assert np.max(np.abs(wav[1000:-1000])) == pytest.approx(0.375, abs=0.01)


def test_duration_comes_from_the_header(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, tone(2.0, 22050), 22050, subtype="PCM_16")
    assert audio.duration(path) == pytest.approx(2.0)
    info = audio.info(path)
    assert (info.sample_rate, info.channels, info.frames) == (22050, 1, 44100)


def test_load_segment_and_load_utterance(tmp_path):
    path = tmp_path / "long.wav"
    x = np.concatenate([np.full(16000, 0.1), np.full(16000, 0.3)]).astype(np.float32)
    sf.write(path, x, 16000, subtype="FLOAT")
    seg = audio.load_utterance({"path": str(path), "start": 1.0, "end": 1.5})
    assert len(seg) == 8000 and np.allclose(seg, 0.3)
    assert len(audio.load_utterance({"path": str(path)})) == 32000


@pytest.fixture
def bad_files(tmp_path):
    """One file per problem, and the sentence each must produce."""
    files = {}
    p = tmp_path / "garbage.wav"
    p.write_bytes(b"this is not audio at all" * 10)
    files["unreadable"] = (p, f"audio file {p} is not audio (no format soundfile reads recognises it)")
    p = tmp_path / "empty.wav"
    sf.write(p, np.zeros(0, np.float32), 16000)
    files["empty"] = (p, f"audio file {p} is empty (0 samples); replace or remove it.")
    p = tmp_path / "short.wav"
    sf.write(p, tone(0.02, 16000), 16000)  # 320 samples < 400
    files["short"] = (
        p,
        f"audio file {p} is 20.0 ms long, shorter than one model frame (400 samples at 16000 Hz); remove it.",
    )
    p = tmp_path / "nan.wav"
    x = tone(0.5, 16000).astype(np.float32)
    x[100:103] = np.nan
    sf.write(p, x, 16000, subtype="FLOAT")
    files["nan"] = (p, f"audio file {p} has 3 NaN or infinite samples; re-export it.")
    p = tmp_path / "inf.wav"
    x = tone(0.5, 16000).astype(np.float32)
    x[7] = np.inf
    sf.write(p, x, 16000, subtype="FLOAT")
    files["inf"] = (p, f"audio file {p} has 1 NaN or infinite samples; re-export it.")
    p = tmp_path / "silent.wav"
    sf.write(p, np.zeros(8000, np.float32), 16000)
    files["silent"] = (p, f"audio file {p} is all silence (peak at or below 0.0001); remove it.")
    return files


@pytest.mark.parametrize("case", ["unreadable", "empty", "short", "nan", "inf", "silent"])
def test_each_bad_file_is_one_sentence_naming_it(bad_files, case):
    path, expected = bad_files[case]
    with pytest.raises(AudioError) as err:
        audio.load(path)
    message = str(err.value)
    assert message.startswith(expected)
    assert message.count(". ") == 0 and message.endswith(".")
    assert err.value.exit_code == 2


def test_header_level_check_catches_what_headers_show(bad_files):
    for case in ("unreadable", "empty", "short"):
        with pytest.raises(AudioError):
            audio.check_file(bad_files[case][0], "header")
    for case in ("nan", "silent"):  # need decoding
        assert audio.check_file(bad_files[case][0], "header") is not None


def test_check_files_reports_all_bad_files_together(bad_files, tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, tone(0.5, 16000), 16000)
    paths = [good] + [p for p, _ in bad_files.values()]
    with pytest.raises(AudioError) as err:
        audio.check_files(paths, what="test audio files")
    message = str(err.value)
    assert message.startswith("6 of 7 test audio files are bad (")
    for name in ("garbage.wav", "empty.wav", "short.wav", "nan.wav", "and 1 more"):
        assert name in message
    assert message.endswith("fix or remove them, or set skip_bad: true to leave them out.")


def test_check_files_skip_bad_logs_the_count(bad_files, tmp_path, caplog):
    good = tmp_path / "good.wav"
    sf.write(good, tone(0.5, 16000), 16000)
    paths = [good] + [p for p, _ in bad_files.values()]
    with caplog.at_level(logging.WARNING, logger="harness.data.audio"):
        report = audio.check_files(paths, skip_bad=True, what="test audio files")
    assert list(report.good) == [str(good)]
    assert report.good[str(good)].frames == 8000
    assert set(report.bad) == {str(p) for p, _ in bad_files.values()}
    assert "skipped 6 of 7 test audio files that are bad" in caplog.text


def test_check_rows_fills_durations_and_drops_bad_rows_when_skipping(bad_files, tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, tone(0.75, 16000), 16000)
    rows = [{"id": "g", "path": "good.wav"}, {"id": "s", "path": str(bad_files["silent"][0])}]
    kept = audio.check_rows(rows, tmp_path, skip_bad=True)
    assert kept == [{"id": "g", "path": "good.wav", "duration": 0.75}]
