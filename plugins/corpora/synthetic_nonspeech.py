"""The embedded non-speech corpus: procedural sound clips of 16 classes (:mod:`harness.data.sounds`),
one to three classes per clip, written as an AudioSet tree and read back by the AudioSet reader.

Layout written under the output folder::

    audioset/class_labels_indices.csv       index,mid,display_name
    audioset/train_segments.csv             YTID, start_seconds, end_seconds, positive_labels
    audioset/dev_segments.csv
    audioset/eval_segments.csv              (the test split)
    audioset/audio/<train|dev|eval>/<YTID>.wav

Each clip mixes its classes at random levels (0 to -12 dB), each class sounding over a random
stretch of at least a third of the clip, over a faint noise floor. MIDs are ``/x/<name>`` (not
AudioSet's), display names follow AudioSet's where one fits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from pydantic import Field

from harness import hookimpl
from harness.api import (
    AudioClass,
    CorpusPlugin,
    PluginParams,
    Segment,
    StageContext,
    audio,
    audioset_rows,
    checked,
    read_class_index,
    read_segments,
    sounds,
    write_class_index,
    write_corpus,
    write_segments,
)

SPLIT_FILES = {"train": "train", "dev": "dev", "test": "eval"}


class NonspeechParams(PluginParams):
    seed: int = 0
    n_clips: int = Field(300, ge=12, description="clips over all splits")
    clip_seconds: float = Field(3.0, ge=0.5, le=10.0)
    n_classes: int = Field(len(sounds.CLASSES), ge=2, le=len(sounds.CLASSES))
    max_labels: int = Field(3, ge=1, le=3, description="classes per clip: 1 to this")
    dev_fraction: float = Field(0.15, gt=0, lt=0.5)
    test_fraction: float = Field(0.15, gt=0, lt=0.5)


def class_list(n: int) -> list[AudioClass]:
    return [AudioClass(i, f"/x/{name.split(',')[0].lower().replace(' ', '_')}", name)
            for i, name in enumerate(list(sounds.CLASSES)[:n])]  # fmt: skip


def render_clip(names: list[str], rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Mix the classes ``names`` into ``n`` samples."""
    mix = rng.standard_normal(n) * 10 ** (-50 / 20)
    for name in names:
        length = int(rng.integers(max(1, n // 3), n + 1))
        start = int(rng.integers(0, n - length + 1))
        src = sounds.generate(name, rng, length, sr) * 10 ** (-rng.uniform(0, 12) / 20)
        fade = min(length // 4, int(0.02 * sr))
        if fade > 0:
            ramp = np.linspace(0, 1, fade)
            src[:fade] *= ramp
            src[-fade:] *= ramp[::-1]
        mix[start : start + length] += src
    return (mix * (rng.uniform(0.3, 0.9) / max(float(np.max(np.abs(mix))), 1e-9))).astype(np.float32)


def write_tree(p: NonspeechParams, root: Path) -> None:
    """Generate the clips and the AudioSet CSVs under ``root``."""
    rng = np.random.default_rng([p.seed, 7001])
    classes = class_list(p.n_classes)
    sr = audio.SAMPLE_RATE
    n = int(round(p.clip_seconds * sr))
    segments: dict[str, list[Segment]] = {s: [] for s in SPLIT_FILES}
    for folder in SPLIT_FILES.values():
        (root / "audio" / folder).mkdir(parents=True, exist_ok=True)
    n_test = max(1, round(p.n_clips * p.test_fraction))
    n_dev = max(1, round(p.n_clips * p.dev_fraction))
    rank = np.argsort(rng.permutation(p.n_clips))
    for i in range(p.n_clips):
        k = int(rng.choice([1, 2, 3][: p.max_labels], p=np.array([0.4, 0.4, 0.2][: p.max_labels]) /
                           sum([0.4, 0.4, 0.2][: p.max_labels])))  # fmt: skip
        # every class leads some clips, so each split sees every class
        chosen = [classes[i % len(classes)], *(classes[j] for j in rng.permutation(len(classes)))]
        picked = list(dict.fromkeys(c.mid for c in chosen))[:k]
        by_mid = {c.mid: c for c in classes}
        split = "test" if rank[i] < n_test else "dev" if rank[i] < n_test + n_dev else "train"
        ytid = f"syn{i:08d}"
        wav = render_clip([by_mid[m].name for m in picked], np.random.default_rng([p.seed, i]), n, sr)
        sf.write(str(root / "audio" / SPLIT_FILES[split] / f"{ytid}.wav"), wav, sr, subtype="PCM_16")
        segments[split].append(Segment(ytid, 0.0, p.clip_seconds, tuple(sorted(picked))))
    write_class_index(root / "class_labels_indices.csv", classes)
    for split, folder in SPLIT_FILES.items():
        write_segments(root / f"{folder}_segments.csv", segments[split])


class SyntheticNonspeech(CorpusPlugin[NonspeechParams]):
    name = "synthetic_nonspeech"
    version = "1"
    summary = "Embedded procedural non-speech clips (16 classes, multi-label) in AudioSet's CSV layout"
    Params = NonspeechParams

    def prepare(self, params: NonspeechParams, out_dir: Path, ctx: StageContext) -> None:
        root = out_dir / "audioset"
        write_tree(params, root)
        # read back through the same code as the real AudioSet
        classes = read_class_index(root / "class_labels_indices.csv")
        splits = {
            split: (read_segments(root / f"{folder}_segments.csv"), root / "audio" / folder)
            for split, folder in SPLIT_FILES.items()
        }
        found = audioset_rows(out_dir, self.name, splits, classes, keep={c.mid for c in classes}, skip_missing=False,
                              extra_meta={"params": params.model_dump(mode="json")})  # fmt: skip
        found.splits = {split: checked(rows, out_dir, self.name) for split, rows in found.splits.items()}
        write_corpus(out_dir, self.name, found)


@hookimpl
def harness_register_corpus(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(SyntheticNonspeech)
