"""Audio input: read, check, downmix and resample to 16 kHz float32.

Every check failure is an :class:`~harness.core.errors.AudioError` whose message is one sentence naming
the file and the problem. :func:`check_files` checks many files and reports all bad ones together,
or skips them with a logged count (``skip_bad``), never silently.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
import soxr

from harness.core.errors import AudioError

log = logging.getLogger("harness.data.audio")

SAMPLE_RATE = 16000
#: the shortest input a model takes: one 25 ms analysis window at 16 kHz
MIN_SAMPLES = 400
#: a file whose peak stays at or below this (about -80 dBFS) is silent
SILENCE_PEAK = 1e-4
#: a file whose peak exceeds this (40 dB above full scale) holds no audio signal; refused, not clipped,
#: since clipping such values would turn the file into a square wave that models would read as speech
MAX_PEAK = 100.0

CheckLevel = Literal["full", "header", "none"]


@dataclass(frozen=True)
class AudioInfo:
    """What a file header says, without decoding the samples."""

    sample_rate: int
    channels: int
    frames: int
    #: the header declares more samples than the file holds (only the ones present are read)
    truncated: bool = False

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def info(path: str | Path) -> AudioInfo:
    """Header of ``path`` (sample rate, channels, frames); raise one sentence when unreadable."""
    try:
        i = sf.info(str(path))
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError or OSError
        if not Path(path).is_file():
            raise AudioError(f"audio file {path} does not exist or is not a regular file; check the path.") from None
        if getattr(exc, "code", None) not in _DAMAGED_AUDIO and _readable(path):
            # libsndfile may say "does not exist" where every decoder it tried gave up on a regular file
            raise AudioError(
                f"audio file {path} is not audio (no format soundfile reads recognises it); replace or remove it."
            ) from None
        raise AudioError(f"audio file {path} cannot be read ({_reason(exc)}); replace or remove it.") from None
    return AudioInfo(int(i.samplerate), int(i.channels), int(i.frames), _declares_more(i.extra_info))


_DAMAGED_AUDIO = (3, 4)  # libsndfile's SF_ERR_MALFORMED_FILE and SF_ERR_UNSUPPORTED_ENCODING: audio, but broken


def _readable(path: str | Path) -> bool:
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError:
        return False
    return True

# libsndfile's log of a chunk shorter than its header says: "data : 32000 (should be 15978)"
_SHORT_CHUNK = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_warned_truncated: set[str] = set()


def _declares_more(log_text: str) -> bool:
    m = _SHORT_CHUNK.search(log_text or "")
    return bool(m) and int(m.group(2)) < int(m.group(1))


def duration(path: str | Path) -> float:
    """Duration in seconds from the file header, without decoding."""
    return info(path).duration


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.rstrip(".")


def check_header(path: str | Path, header: AudioInfo | None = None) -> AudioInfo:
    """The checks a header allows: readable, not empty, at least one model frame long."""
    header = header or info(path)
    if header.truncated and str(path) not in _warned_truncated:
        _warned_truncated.add(str(path))
        log.warning("audio file %s is truncated: its header declares more samples than it holds; only the %d "
                    "present (%.2f s) are used (copy or re-export it to get all of it).", path, header.frames,
                    header.duration)
    if header.frames <= 0:
        raise AudioError(f"audio file {path} is empty (0 samples); replace or remove it.")
    if header.frames * SAMPLE_RATE < MIN_SAMPLES * header.sample_rate:
        raise AudioError(
            f"audio file {path} is {header.duration * 1000:.1f} ms long, shorter than one model frame "
            f"({MIN_SAMPLES} samples at {SAMPLE_RATE} Hz); remove it."
        )
    return header


def check_waveform(wav: np.ndarray, path: str | Path) -> None:
    """The checks that need the samples: finite values, not all silence."""
    if wav.size == 0:
        raise AudioError(f"audio file {path} is empty (0 samples); replace or remove it.")
    if not np.isfinite(wav).all():
        bad = int(np.count_nonzero(~np.isfinite(wav)))
        raise AudioError(f"audio file {path} has {bad} NaN or infinite samples; re-export it.")
    peak = float(np.max(np.abs(wav)))
    if peak > MAX_PEAK:
        raise AudioError(
            f"audio file {path} has samples up to {peak:.3g}, far beyond full scale (±1, refused above {MAX_PEAK:g}); "
            "re-export it as normalised audio."
        )
    if peak <= SILENCE_PEAK:
        raise AudioError(f"audio file {path} is all silence (peak at or below {SILENCE_PEAK:g}); remove it.")


def to_mono(wav: np.ndarray) -> np.ndarray:
    """Average the channels of a frames×channels array (1-D input is returned as is)."""
    return wav.mean(axis=1) if wav.ndim == 2 else wav


def resample(wav: np.ndarray, sr_in: float, sr_out: float = SAMPLE_RATE) -> np.ndarray:
    """Resample a mono float signal with soxr (high quality); float32 out."""
    wav = np.asarray(wav, dtype=np.float32)
    if sr_in == sr_out:
        return wav
    return soxr.resample(wav, sr_in, sr_out, quality="HQ").astype(np.float32, copy=False)


def load(path: str | Path, sample_rate: int = SAMPLE_RATE, check: bool = True) -> np.ndarray:
    """Read any format soundfile reads as mono float32 at ``sample_rate``, checking it on the way."""
    header = info(path)
    if check:
        check_header(path, header)
    try:
        wav, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(f"audio file {path} cannot be decoded ({_reason(exc)}); replace or remove it.") from None
    mono = to_mono(wav)
    if check:
        check_waveform(mono, path)
    return resample(mono, sr, sample_rate)


def load_segment(path: str | Path, start: float, end: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read the ``[start, end)`` seconds of a file (for corpora that store many utterances per file)."""
    header = info(path)
    a = max(0, int(round(start * header.sample_rate)))
    b = min(header.frames, int(round(end * header.sample_rate)))
    try:
        wav, sr = sf.read(str(path), start=a, stop=b, dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioError(f"audio file {path} cannot be decoded ({_reason(exc)}); replace or remove it.") from None
    mono = to_mono(wav)
    check_waveform(mono, f"{path} [{start:.2f}-{end:.2f} s]")
    return resample(mono, sr, sample_rate)


def load_utterance(row: dict, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The audio of a manifest row: the whole file, or ``[start, end)`` seconds of it when the row
    has ``start`` and ``end`` (corpora with many utterances per file, such as TED-LIUM)."""
    if row.get("start") is not None and row.get("end") is not None:
        return load_segment(row["path"], float(row["start"]), float(row["end"]), sample_rate)
    return load(row["path"], sample_rate)


def check_file(path: str | Path, level: CheckLevel = "full") -> AudioInfo | None:
    """Check one file at ``level`` ("full" decodes it, "header" reads the header only)."""
    if level == "none":
        return None
    header = check_header(path)
    if level == "full":
        try:
            wav, _ = sf.read(str(path), dtype="float32", always_2d=True)
        except Exception as exc:
            raise AudioError(
                f"audio file {path} cannot be decoded ({_reason(exc)}); replace or remove it."
            ) from None
        check_waveform(to_mono(wav), path)
    return header


@dataclass
class CheckReport:
    """The outcome of :func:`check_files`: headers of good files and the problem of each bad one."""

    good: dict[str, AudioInfo]
    bad: dict[str, str]


def check_files(
    paths: Iterable[str | Path],
    level: CheckLevel = "full",
    skip_bad: bool = False,
    workers: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    what: str = "audio files",
) -> CheckReport:
    """Check many files (threads: libsndfile releases the GIL) and report every bad one together.

    With ``skip_bad`` false (the default) any bad file raises one :class:`AudioError` listing them
    all; with ``skip_bad`` true the bad files are logged with a count and left out of ``good``.
    """
    unique = list(dict.fromkeys(str(p) for p in paths))
    if level == "none":
        return CheckReport({p: AudioInfo(0, 0, 0) for p in unique}, {})
    workers = workers or min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2)

    def one(path: str) -> tuple[str, AudioInfo | None, str | None]:
        try:
            return path, check_file(path, level), None
        except AudioError as exc:
            return path, None, str(exc)

    good: dict[str, AudioInfo] = {}
    bad: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for i, (path, header, problem) in enumerate(pool.map(one, unique), 1):
            if problem is None:
                assert header is not None
                good[path] = header
            else:
                bad[path] = problem
            if on_progress is not None and (i % 200 == 0 or i == len(unique)):
                on_progress(i, len(unique))
    if bad:
        summary = _summarise(bad)
        if not skip_bad:
            raise AudioError(
                f"{len(bad)} of {len(unique)} {what} are bad ({summary}); fix or remove them, "
                f"or set skip_bad: true to leave them out."
            )
        log.warning("skipped %d of %d %s that are bad (%s).", len(bad), len(unique), what, summary)
    return CheckReport(good, bad)


def _summarise(bad: dict[str, str], limit: int = 5) -> str:
    """The first few problems, each without its trailing advice, joined into one clause."""
    parts = [msg.split(";")[0].removeprefix("audio file ") for msg in list(bad.values())[:limit]]
    more = len(bad) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def check_rows(
    rows: Sequence[dict], root: Path, level: CheckLevel = "full", skip_bad: bool = False, what: str = "audio files"
) -> list[dict]:
    """Check the audio of manifest rows (``path`` relative to ``root`` or absolute) and fill in
    ``duration`` from the header where missing; rows with bad audio raise or are skipped."""
    paths = [str(Path(r["path"]) if Path(r["path"]).is_absolute() else root / r["path"]) for r in rows]
    report = check_files(paths, level=level, skip_bad=skip_bad, what=what)
    out = []
    for row, path in zip(rows, paths, strict=True):
        if path in report.bad:
            continue
        header = report.good.get(path)
        if "duration" not in row and header is not None and header.sample_rate:
            row = {**row, "duration": round(header.duration, 4)}
        out.append(row)
    return out
