"""Task ``pc``: frame-level phone classification, a linear head, cross-entropy, frame accuracy in percent.

The paper's PC fine-tuning task (TIMIT, Appendix D.1), usable on any corpus with phone alignments
(``phones``: ``[[phone, start, end], ...]``) and a phone inventory (vocab.json ``phones``). Each
frame is labelled with the phone whose interval contains its centre
(:func:`harness.api.frame_labels`); frames past the last phone are ignored. Supervised and
multitask fine-tuning name it as ``task: pc``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from harness import hookimpl
from harness.api import (
    IGNORE_LABEL,
    Batch,
    CorpusError,
    Direction,
    PluginParams,
    PreparedCorpus,
    Task,
    TaskPlugin,
    frame_labels,
)

if TYPE_CHECKING:
    import torch
    from torch import nn


class FramePhoneTask(Task):
    """Phone classification of each frame of the features (torch is imported where the task computes,
    so registering the plugin does not load it)."""

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
        from torch import nn

        return nn.Linear(input_dim, len(self.phones))

    def targets(self, batch: Batch) -> torch.Tensor:
        """B×T labels aligned with ``batch.features`` (``IGNORE_LABEL`` on padding)."""
        import torch

        assert batch.features is not None and batch.lengths is not None
        frames = batch.features.shape[1]
        rows = []
        for row, n in zip(batch.utterances, batch.lengths.tolist(), strict=True):
            lab = frame_labels(row["phones"], min(int(n), frames), self.frame_shift, self.index)
            rows.append(np.pad(lab, (0, frames - len(lab)), constant_values=IGNORE_LABEL))
        return torch.from_numpy(np.stack(rows)).to(batch.features.device)

    def loss(self, head: nn.Module, batch: Batch) -> torch.Tensor:
        import torch.nn.functional as F

        logits = head(batch.features)
        return F.cross_entropy(logits.flatten(0, 1).float(), self.targets(batch).flatten(), ignore_index=IGNORE_LABEL)

    def predict(self, head: nn.Module, batch: Batch) -> list[dict[str, Any]]:
        pred = head(batch.features).argmax(-1)
        target = self.targets(batch)
        valid = target != IGNORE_LABEL
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


class FramePhoneParams(PluginParams):
    """None: the phone inventory comes from the corpus, the frame shift from the upstream."""


class FramePhoneClassification(TaskPlugin[FramePhoneParams]):
    name = "pc"
    version = "1"
    summary = "Frame-level phone classification (linear head, cross-entropy, frame accuracy); needs phone alignments"

    def make_task(self, corpus: PreparedCorpus, params: FramePhoneParams, frame_shift: float) -> FramePhoneTask:
        corpus.require(FramePhoneTask.label_fields, "frame phone classification (pc)")
        return FramePhoneTask(corpus.vocab.get("phones", []), frame_shift)


@hookimpl
def harness_register_task(registry):
    registry.add(FramePhoneClassification)
