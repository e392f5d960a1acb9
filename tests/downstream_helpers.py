"""A tiny deterministic upstream and a tiny tone corpus for the downstream, featurizer and ABX tests.

The corpus: utterances of 4-6 "phones" (sinusoids of a phone-specific frequency, shifted by the
speaker; the emotion sets the loudness), with text (one word per phone pair), slots, folds and an
ABX item file. Everything is learnable by a probe in a few dozen steps, and it is written in well
under a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from torch import nn

from harness.core.manifest import write_json, write_jsonl
from harness.core.model_types import UpstreamModel, UpstreamOutput
from harness.core.registry import PluginManager
from harness.core.stage import StageContext
from harness.evaluation.abx import Item, write_item_file

SR = 16000
PHONES = {"a": 300.0, "b": 620.0, "c": 1000.0, "d": 1500.0}
SPEAKERS = {"s0": 0.0, "s1": 60.0, "s2": 130.0}
EMOTIONS = {"calm": 0.15, "loud": 0.7}


class FakeUpstream(UpstreamModel):
    """A strided conv front end (20 ms frames) and two tanh linear layers: 3 hidden states of ``dim``.

    Every frame depends only on its own samples, so the output does not depend on batch padding.
    """

    family = "fake"

    def __init__(self, dim: int = 16, layers: int = 2, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.conv = nn.Conv1d(1, dim, 400, stride=320)
        self.layers = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * (0.5 / max(1, p.shape[-1]) ** 0.5))
        self.hidden_size = dim
        self.num_hidden_states = layers + 1
        self.frame_shift = 0.02
        self.calls = 0

    def frame_lengths(self, wav_lengths: torch.Tensor) -> torch.Tensor:
        return torch.clamp(torch.div(wav_lengths - 400, 320, rounding_mode="floor") + 1, min=0)

    def forward(self, wavs: torch.Tensor, wav_lengths: torch.Tensor) -> UpstreamOutput:
        self.calls += 1
        x = torch.tanh(self.conv(wavs.unsqueeze(1)).transpose(1, 2))
        states = [x]
        for layer in self.layers:
            x = torch.tanh(layer(x))
            states.append(x)
        lengths = self.frame_lengths(wav_lengths)
        return UpstreamOutput([s[:, : int(lengths.max())] for s in states], lengths)

    def config(self) -> dict[str, Any]:
        return {"dim": self.hidden_size, "layers": self.num_hidden_states - 1}


def _utterance(rng: np.random.Generator, speaker: str, emotion: str) -> tuple[np.ndarray, list, str, list]:
    n = int(rng.integers(4, 7)) // 2 * 2
    names = [str(rng.choice(list(PHONES))) for _ in range(n)]
    pieces, phones, t = [np.zeros(int(0.05 * SR), np.float32)], [["sil", 0.0, 0.05]], 0.05
    for name in names:
        dur = float(rng.uniform(0.08, 0.16))
        k = np.arange(int(dur * SR)) / SR
        freq = PHONES[name] + SPEAKERS[speaker]
        tone = EMOTIONS[emotion] * np.sin(2 * np.pi * freq * k) + 0.02 * rng.standard_normal(len(k))
        pieces.append(tone.astype(np.float32))
        phones.append([name, round(t, 4), round(t + len(k) / SR, 4)])
        t += len(k) / SR
    pieces.append(np.zeros(int(0.05 * SR), np.float32))
    phones.append(["sil", round(t, 4), round(t + 0.05, 4)])
    words = ["".join(names[i : i + 2]) for i in range(0, n, 2)]
    slots = [["first", words[0]]] + ([["last", words[-1]]] if len(words) > 1 else [])
    return np.concatenate(pieces), phones, " ".join(words), slots


def make_tiny_corpus(root: Path, per_split: dict[str, int] | None = None, seed: int = 0) -> Path:
    """Write the tone corpus into ``root`` (a prepared corpus folder) and return it."""
    per_split = per_split or {"train": 24, "dev": 9, "test": 9}
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "wav").mkdir(exist_ok=True)
    splits: dict[str, list[dict[str, Any]]] = {}
    for split, count in per_split.items():
        rows = []
        for i in range(count):
            speaker = list(SPEAKERS)[i % len(SPEAKERS)]
            emotion = list(EMOTIONS)[(i // len(SPEAKERS)) % len(EMOTIONS)]
            wav, phones, text, slots = _utterance(rng, speaker, emotion)
            uid = f"{split}-{i:03d}"
            sf.write(root / "wav" / f"{uid}.wav", wav, SR)
            rows.append(
                {
                    "id": uid,
                    "path": f"wav/{uid}.wav",
                    "duration": len(wav) / SR,
                    "speaker": speaker,
                    "emotion": emotion,
                    "fold": list(SPEAKERS).index(speaker) % 2,
                    "phones": phones,
                    "text": text,
                    "slots": slots,
                }
            )
        write_jsonl(root / f"{split}.jsonl", rows)
        splits[split] = rows
    for split in ("dev", "test"):
        items = []
        for row in splits[split]:
            ph = row["phones"]
            for k in range(1, len(ph) - 1):
                items.append(Item(row["id"], ph[k][1], ph[k][2], ph[k][0], ph[k - 1][0], ph[k + 1][0], row["speaker"]))
        write_item_file(root / f"{split}.item", items)
    write_json(
        root / "vocab.json",
        {
            "phones": sorted([*PHONES, "sil"]),
            "speakers": sorted(SPEAKERS),
            "emotions": sorted(EMOTIONS),
            "slot_types": ["first", "last"],
        },
    )
    write_json(
        root / "meta.json",
        {
            "corpus": "tones",
            "splits": list(per_split),
            "label_fields": ["speaker", "emotion", "fold", "phones", "text", "slots"],
            "folds": 2,
            "abx_items": {"dev": "dev.item", "test": "test.item"},
            "sample_rate": SR,
        },
    )
    return root


def make_ctx(tmp: Path, seed: int = 0, keys: dict[str, str] | None = None) -> StageContext:
    """A minimal stage context with its folders under ``tmp``."""
    return StageContext(
        key="test-stage",
        out_dir=tmp / "out",
        work_dir=tmp / "work",
        cache_root=tmp / "cache",
        seed=seed,
        plugins=PluginManager(entry_points=False),
        input_keys=keys if keys is not None else {"model": "m", "corpus": "c"},
    )


# --------------------------------------------------------------------------- libri-light's ABX


def librilight_abx(
    feature_dir: Path, item_file: Path, frame_shift: float, distance: str = "cosine"
) -> dict[str, float] | None:
    """libri-light's ABX (``zerospeech-libriabx2``) on ``<feature_dir>/<file>.npy``, no subsampling.

    Keys ``"<speaker>-<context>"``; None when the package is not installed. The package imports
    torchaudio (its CPC path) and pandas (its CLI) at the top only; empty stand-ins are put in
    ``sys.modules`` for the import when they are missing and removed after.
    """
    import contextlib
    import importlib
    import sys
    import types
    import warnings

    @contextlib.contextmanager
    def stand_ins():
        added = []
        for name in ("torchaudio", "pandas"):
            try:
                importlib.import_module(name)
            except ImportError:
                sys.modules[name] = types.ModuleType(name)
                added.append(name)
        try:
            yield
        finally:
            for name in added:
                sys.modules.pop(name, None)

    try:
        with stand_ins():
            from zrc_abx2.ABX_src.models import Pooling
            from zrc_abx2.eval_ABX import EvalABX
    except ImportError:
        return None
    ev = EvalABX()
    seq = ev._find_all_files(str(feature_dir), ".npy")
    with warnings.catch_warnings(), contextlib.redirect_stdout(None):
        warnings.simplefilter("ignore")
        return ev._ABX(
            Pooling.NONE,
            3459,
            lambda path: torch.tensor(np.load(path)),
            str(item_file),
            seq,
            distance,
            1 / frame_shift,
            ["within", "across"],
            ["within", "any"],
            max_x_across=10**9,
            max_size_group=10**9,
        )


def clustered_features(
    root: Path, n_files: int, dim: int, seed: int = 0, n_phones: int = 4, n_speakers: int = 4
) -> tuple[dict[str, np.ndarray], list[Item]]:
    """Random frame features with phone and speaker structure plus an item file's items; the
    features are also saved as ``root/<file>.npy``."""
    rng = np.random.default_rng(seed)
    phones = "abcdefghijklmnop"[:n_phones]
    protos = rng.normal(size=(n_phones, dim))
    spk = rng.normal(size=(n_speakers, dim))
    feats: dict[str, np.ndarray] = {}
    items: list[Item] = []
    root.mkdir(parents=True, exist_ok=True)
    for f in range(n_files):
        s = f % n_speakers
        seq = rng.integers(0, n_phones, int(rng.integers(8, 14)))
        frames, t = [], 0.0
        for k, p in enumerate(seq):
            dur = int(rng.integers(3, 9))
            frames.append(protos[p] + 0.8 * spk[s] + rng.normal(size=(dur, dim)))
            if 0 < k < len(seq) - 1:
                prev, nxt = phones[seq[k - 1]], phones[seq[k + 1]]
                items.append(Item(f"f{f:03d}", t, t + dur * 0.02, phones[p], prev, nxt, f"s{s}"))
            t += dur * 0.02
        feats[f"f{f:03d}"] = np.concatenate(frames).astype(np.float32)
        np.save(root / f"f{f:03d}.npy", feats[f"f{f:03d}"])
    return feats, items
