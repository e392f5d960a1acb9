"""Frame-level phone classification (PC): a linear head, cross-entropy, frame accuracy in percent.

The paper's PC fine-tuning task (TIMIT, Appendix D.1), usable on any corpus with phone alignments.
Frame ``i`` of a model with frame shift ``s`` is labelled with the phone whose ``[start, end)``
interval contains its centre ``(i + 0.5)·s``; frames past the last phone are ignored.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.core.errors import CorpusError
from harness.core.interfaces import Batch, Direction, Task

IGNORE = -100


def frame_labels(phones: list[list[Any]], n_frames: int, frame_shift: float, index: dict[str, int]) -> np.ndarray:
    """Phone index per frame (``IGNORE`` outside the alignment) for ``[[phone, start, end], ...]``."""
    out = np.full(n_frames, IGNORE, dtype=np.int64)
    if not phones or n_frames == 0:
        return out
    starts = np.array([float(p[1]) for p in phones])
    ends = np.array([float(p[2]) for p in phones])
    ids = np.array([index.get(str(p[0]), IGNORE) for p in phones], dtype=np.int64)
    centres = (np.arange(n_frames) + 0.5) * frame_shift
    k = np.searchsorted(ends, centres, side="right")
    inside = (k < len(phones)) & (centres >= starts[np.minimum(k, len(phones) - 1)])
    out[inside] = ids[k[inside]]
    return out


class FramePhoneTask(Task):
    """Phone classification of each frame of the features."""

    name = "pc"
    label_fields = ("phones",)
    metrics: dict[str, Direction] = {"acc": "higher"}
    primary_metric = "acc"
    pooled = False

    def __init__(self, phones: list[str], frame_shift: float):
        if not phones:
            raise CorpusError("frame phone classification needs a phone inventory (vocab.json `phones`).")
        self.phones = list(phones)
        self.index = {p: i for i, p in enumerate(self.phones)}
        self.frame_shift = frame_shift

    def build_head(self, input_dim: int) -> nn.Module:
        return nn.Linear(input_dim, len(self.phones))

    def targets(self, batch: Batch) -> torch.Tensor:
        """B×T labels aligned with ``batch.features`` (``IGNORE`` on padding)."""
        assert batch.features is not None and batch.lengths is not None
        frames = batch.features.shape[1]
        rows = []
        for row, n in zip(batch.utterances, batch.lengths.tolist(), strict=True):
            lab = frame_labels(row["phones"], min(int(n), frames), self.frame_shift, self.index)
            rows.append(np.pad(lab, (0, frames - len(lab)), constant_values=IGNORE))
        return torch.from_numpy(np.stack(rows)).to(batch.features.device)

    def loss(self, head: nn.Module, batch: Batch) -> torch.Tensor:
        logits = head(batch.features)
        return F.cross_entropy(logits.flatten(0, 1).float(), self.targets(batch).flatten(), ignore_index=IGNORE)

    def predict(self, head: nn.Module, batch: Batch) -> list[dict[str, Any]]:
        pred = head(batch.features).argmax(-1)
        target = self.targets(batch)
        valid = target != IGNORE
        correct = ((pred == target) & valid).sum(1).tolist()
        total = valid.sum(1).tolist()
        return [
            {"id": row["id"], "stats": {"acc": [c, n]}}
            for row, c, n in zip(batch.utterances, correct, total, strict=True)
        ]

    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, float]:
        correct = sum(r["stats"]["acc"][0] for r in records)
        total = sum(r["stats"]["acc"][1] for r in records)
        return {"acc": 100.0 * correct / total if total else float("nan")}
