"""Render one utterance of the synthetic corpus: synthesize, align, perturb, write the wav."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from harness.api import SIL, audio
from plugins.corpora._synth import nuisance, phonemap
from plugins.corpora._synth.espeak import Espeak, Voice


@dataclass(frozen=True)
class Spec:
    """Everything needed to render one utterance (drawn by the plan in the parent process)."""

    id: str
    split: str
    speaker: str
    fold: int
    emotion: str
    text: str
    intent: str
    slots: tuple[tuple[str, str], ...]
    voice: Voice
    seed: int
    speed: float  # > 1 is faster and higher
    pad: tuple[float, float]  # leading and trailing silence in seconds
    tilt_db: float = 0.0  # style: spectral tilt above 1 kHz
    drive: float = 0.0  # style: soft saturation


def render(engine: Espeak, spec: Spec, out_dir: str, cfg: nuisance.Nuisance | None) -> dict[str, Any]:
    """Write ``out_dir/wav/<split>/<id>.wav`` (16 kHz PCM16) and return the manifest row."""
    syn = engine.synthesize(spec.text, spec.voice, spec.seed)
    if len(syn.samples) == 0:
        raise RuntimeError(f"espeak-ng produced no audio for {spec.text!r}")
    native = syn.samples.astype(np.float32) / 32768.0
    phones = phonemap.align(syn.phonemes, len(native), syn.sample_rate)
    sr = audio.SAMPLE_RATE
    # Speed perturbation: read the native samples as if they had been recorded at rate * speed.
    wav = audio.resample(native, syn.sample_rate * spec.speed, sr)
    lead, trail = (int(round(x * sr)) for x in spec.pad)
    wav = nuisance.voice_quality(wav, spec.tilt_db, spec.drive, sr)
    wav = np.concatenate([np.zeros(lead), wav, np.zeros(trail)])
    wav = nuisance.apply(wav, np.random.default_rng(spec.seed), cfg, sr)
    duration = round(len(wav) / sr, 4)
    shift = lead / sr
    timed = [[p, round(a / spec.speed + shift, 4), round(b / spec.speed + shift, 4)] for p, a, b in phones]
    rel = Path("wav") / spec.split / f"{spec.id}.wav"
    sf.write(str(Path(out_dir) / rel), wav, sr, subtype="PCM_16")
    return {
        "id": spec.id,
        "path": rel.as_posix(),
        "duration": duration,
        "speaker": spec.speaker,
        "text": spec.text,
        "phones": close_alignment(timed, duration),
        "emotion": spec.emotion,
        "fold": spec.fold,
        "intent": spec.intent,
        "slots": [list(s) for s in spec.slots],
        "split": spec.split,
    }


def close_alignment(rows: list[list], duration: float) -> list[list]:
    """Start at 0 and end at ``duration`` in silence; contiguous; no empty phone; silences merged."""
    rows = [list(r) for r in rows]
    if not rows or rows[0][0] != SIL:
        rows.insert(0, [SIL, 0.0, rows[0][1] if rows else duration])
    if rows[-1][0] != SIL:
        rows.append([SIL, rows[-1][2], duration])
    rows[-1][2] = duration
    out: list[list] = []
    for p, _, b in rows:
        a = out[-1][2] if out else 0.0
        b = min(b, duration)
        if b <= a:
            continue
        if out and p == SIL and out[-1][0] == SIL:
            out[-1][2] = b
        else:
            out.append([p, a, b])
    out[-1][2] = duration
    return out
