"""A tiny upstream, a tiny labelled corpus and a stage context for the fine-tuning tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
from torch import nn

from harness.core.model_types import UpstreamModel, UpstreamOutput
from harness.core.stage import StageContext
from harness.data.corpus import write_prepared


class TinyUpstream(UpstreamModel):
    """A strided conv "CNN" (20 ms frames) and two tanh layers; 3 hidden states of size 16."""

    family = "tiny_test"
    hidden_size = 16
    num_hidden_states = 3
    frame_shift = 0.02

    def __init__(self) -> None:
        super().__init__()
        self.cnn = nn.Conv1d(1, 8, kernel_size=400, stride=320)
        self.proj = nn.Linear(8, 16)
        self.layer = nn.Sequential(nn.Dropout(0.1), nn.Linear(16, 16), nn.Tanh())
        self.layerdrop = 0.1

    def forward(self, wavs: torch.Tensor, wav_lengths: torch.Tensor) -> UpstreamOutput:
        x = self.cnn(wavs[:, None, :]).transpose(1, 2)
        h0 = torch.tanh(self.proj(x))
        h1 = self.layer(h0)
        lengths = torch.clamp((wav_lengths - 400) // 320 + 1, min=0, max=x.shape[1])
        return UpstreamOutput([h0, h1, h1 + h0], lengths)

    def config(self) -> dict[str, Any]:
        return {}

    def downsampling_module(self) -> nn.Module:
        return self.cnn

    def set_layerdrop(self, probability: float) -> None:
        self.layerdrop = probability

    def frame_lengths(self, wav_lengths: torch.Tensor) -> torch.Tensor:
        return torch.clamp((wav_lengths - 400) // 320 + 1, min=0)


def make_corpus(root: Path, n: int = 24, seed: int = 0) -> Path:
    """Utterances of a tone ("a") then noise ("b"); 3 speakers (tone pitch); tags from the sounds."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "wav").mkdir(exist_ok=True)
    rows: dict[str, list[dict[str, Any]]] = {"train": [], "dev": [], "test": []}
    for i in range(n):
        split = "train" if i % 4 < 2 else ("dev" if i % 4 == 2 else "test")
        spk = i % 3
        dur = float(rng.uniform(0.5, 0.9))
        cut = round(dur * float(rng.uniform(0.4, 0.6)), 3)
        t = np.arange(int(dur * 16000)) / 16000
        wav = np.where(t < cut, 0.5 * np.sin(2 * np.pi * (200 + 150 * spk) * t), 0.3 * rng.standard_normal(len(t)))
        path = root / "wav" / f"u{i}.wav"
        sf.write(path, wav.astype(np.float32), 16000)
        tags = ["tone"] + (["noise"] if spk != 1 else ["hum"])
        rows[split].append(
            {
                "id": f"u{i}",
                "path": str(path),
                "duration": len(t) / 16000,
                "speaker": f"s{spk}",
                "phones": [["a", 0.0, cut], ["b", cut, len(t) / 16000]],
                "tags": tags,
                "text": "a b",
            }
        )
    write_prepared(root, "toy", rows)
    return root


def make_ctx(tmp: Path, plugins: Any = None, seed: int = 0) -> StageContext:
    return StageContext(
        key="ft-test-" + tmp.name,
        out_dir=tmp / "out",
        work_dir=tmp / "work",
        cache_root=tmp / "cache",
        seed=seed,
        plugins=plugins,
    )
