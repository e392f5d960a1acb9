"""Two-speaker recordings of the embedded corpus (``mixtures: N``) for speaker diarization, in the
style of Libri2Mix: two utterances of different voices added with a random level difference.

Where Libri2Mix starts both utterances together, here the second starts a random 25–75 % into the
first, so a recording holds each voice alone, both at once, and pauses. Each voice's speech turns
(``turns``: ``[speaker, start, end]``) are the runs of its phone alignment outside silence, shifted
to where it starts. Sources: ``sd_train`` mixes the train split, ``sd_dev`` the dev split and
``sd_test`` the unseen voices (the test split when there is only one), as Libri2Mix's test mixes
LibriSpeech's unseen test speakers. ``sd_train`` gets N recordings, ``sd_dev`` and ``sd_test`` a
quarter of that each (at least two).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from harness.api import SIL, audio

SPLITS = ("sd_train", "sd_dev", "sd_test")
#: where the second utterance starts, as a share of the first one's length
START_SHARE = (0.25, 0.75)
#: the second voice's level against the first, in dB (Libri2Mix draws each source's loudness in an 8-dB range)
LEVEL_DB = (-4.0, 4.0)
#: pauses shorter than this (seconds) stay inside a speech turn
BRIDGED_PAUSE = 0.3
#: the mixture's peak when the sum would exceed it
PEAK = 0.9


def speech_turns(phones: list[list], speaker: str, offset: float) -> list[list]:
    """``[speaker, start, end]`` of each run of non-silence phones, shifted by ``offset`` seconds; runs apart
    by less than :data:`BRIDGED_PAUSE` are one turn, as NIST's diarization references bridge short pauses."""
    turns: list[list] = []
    for phone, start, end in phones:
        if phone == SIL:
            continue
        if turns and start + offset - turns[-1][2] < BRIDGED_PAUSE:
            turns[-1][2] = round(end + offset, 4)
        else:
            turns.append([speaker, round(start + offset, 4), round(end + offset, 4)])
    return turns


def source_splits(rows: list[dict[str, Any]]) -> dict[str, str]:
    """Mixture split -> the split whose utterances it mixes."""
    unseen = {r["speaker"] for r in rows if r["split"] == "test_unseen"}
    return {"sd_train": "train", "sd_dev": "dev", "sd_test": "test_unseen" if len(unseen) >= 2 else "test"}


def make_mixtures(n: int, rows: list[dict[str, Any]], seed: list[int], out_dir: Path) -> list[dict[str, Any]]:
    """Write the mixtures of ``n`` (see the module docstring) under ``out_dir/wav/<split>/``; return their
    rows (with ``split``). Drawn from ``seed`` alone, so the other utterances do not depend on them."""
    rng = np.random.default_rng(seed)
    out = []
    for split, source in source_splits(rows).items():
        pool = [r for r in rows if r["split"] == source]
        if len({r["speaker"] for r in pool}) < 2:
            continue
        (out_dir / "wav" / split).mkdir(parents=True, exist_ok=True)
        for k in range(n if split == "sd_train" else max(2, n // 4)):
            first = pool[int(rng.integers(len(pool)))]
            others = [r for r in pool if r["speaker"] != first["speaker"]]
            second = others[int(rng.integers(len(others)))]
            start = float(rng.uniform(*START_SHARE)) * float(first["duration"])
            out.append(_write(f"{split}-{k:04d}", split, first, second, start, float(rng.uniform(*LEVEL_DB)), out_dir))
    return out


def _rms(wav: np.ndarray) -> float:
    return float(np.sqrt(np.mean(wav**2))) or 1.0


def _write(mix_id: str, split: str, first: dict[str, Any], second: dict[str, Any], start: float, level_db: float,
           out_dir: Path) -> dict[str, Any]:
    sr = audio.SAMPLE_RATE
    a = audio.load(out_dir / first["path"], check=False)
    b = audio.load(out_dir / second["path"], check=False)
    b = b * (_rms(a) / _rms(b)) * 10 ** (level_db / 20)
    at = int(round(start * sr))
    mix = np.zeros(max(len(a), at + len(b)))
    mix[: len(a)] += a
    mix[at : at + len(b)] += b
    peak = float(np.max(np.abs(mix)))
    if peak > PEAK:
        mix *= PEAK / peak
    rel = Path("wav") / split / f"{mix_id}.wav"
    sf.write(str(out_dir / rel), mix.astype(np.float32), sr, subtype="PCM_16")
    offset = at / sr
    turns = speech_turns(first["phones"], first["speaker"], 0.0) + speech_turns(second["phones"], second["speaker"],
                                                                                offset)
    return {"id": mix_id, "path": rel.as_posix(), "duration": round(len(mix) / sr, 4),
            "turns": sorted(turns, key=lambda t: (t[1], t[0])), "split": split}
