"""The keyword clips of the embedded corpus (``keywords: N``), in the style of Speech Commands:
isolated words and one-second background clips for keyword spotting.

Each round a voice says the ten commands and one other word of Speech Commands' auxiliary words,
and one silence clip (procedural background noise, no speech) is added for it, so the twelve
classes come out balanced. Splits by voice, as Speech Commands holds out speakers: the unseen voices
in ``ks_test``, the last sixth of the seen voices (at least one) in ``ks_dev``, the rest in
``ks_train``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from harness.api import KEYWORD_COMMANDS, KEYWORD_SILENCE, audio, sounds

#: Speech Commands v0.01's auxiliary words (``_unknown_`` for keyword spotting)
OTHER_WORDS = ("bed", "bird", "cat", "dog", "eight", "five", "four", "happy", "house", "marvin", "nine", "one",
               "seven", "sheila", "six", "three", "tree", "two", "wow", "zero")
SPLITS = ("ks_train", "ks_dev", "ks_test")
#: silence clips' peak level, drawn uniformly (quieter than speech, as a room's background)
SILENCE_PEAK = (0.02, 0.3)


def voice_splits(seen: list[str], unseen: list[str]) -> dict[str, str]:
    """Voice name -> keyword split."""
    n_dev = max(1, round(len(seen) / 6))
    out = {name: "ks_dev" if k >= len(seen) - n_dev else "ks_train" for k, name in enumerate(seen)}
    return {**out, **dict.fromkeys(unseen, "ks_test")}


def round_words(rng: np.random.Generator) -> list[str]:
    """One round: the ten commands and one other word, in a random order."""
    words = [*KEYWORD_COMMANDS, OTHER_WORDS[int(rng.integers(len(OTHER_WORDS)))]]
    return [words[i] for i in rng.permutation(len(words))]


def write_silence(utt_id: str, split: str, speaker: str, seed: int, out_dir: Path) -> dict[str, Any]:
    """Write one second of background noise to ``out_dir/wav/<split>/<id>.wav``; return its row."""
    rng = np.random.default_rng(seed)
    sr = audio.SAMPLE_RATE
    noise = sounds.noise(rng, sr, sr)
    wav = noise * (rng.uniform(*SILENCE_PEAK) / max(float(np.max(np.abs(noise))), 1e-9))
    rel = Path("wav") / split / f"{utt_id}.wav"
    sf.write(str(out_dir / rel), wav.astype(np.float32), sr, subtype="PCM_16")
    return {"id": utt_id, "path": rel.as_posix(), "duration": 1.0, "speaker": speaker, "keyword": KEYWORD_SILENCE,
            "split": split}
