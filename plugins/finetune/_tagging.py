"""The tagging task and training of ``nonspeech`` (:mod:`plugins.finetune.nonspeech`): imported when
the scenario runs, so registering the plugin does not load torch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.api import (
    Batch,
    CorpusError,
    Direction,
    FinetuneResult,
    PreparedCorpus,
    StageContext,
    Task,
    UpstreamModel,
    finetune_on_task,
    mean_pool,
    pick_corpus,
)

if TYPE_CHECKING:
    from plugins.finetune.nonspeech import NonspeechParams


def average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """AP of one class: ``scores`` and binary ``labels`` of shape (N,); NaN without positives."""
    positives = labels.sum()
    if positives == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order].astype(np.float64)
    tp, fp = np.cumsum(y), np.cumsum(1.0 - y)
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # one point per distinct threshold
    tp, fp = tp[last], fp[last]
    precision = tp / (tp + fp)
    recall = tp / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def mean_average_precision(scores: np.ndarray, labels: np.ndarray) -> float:
    """mAP in percent over the classes (columns) that have a positive."""
    aps = [average_precision(scores[:, c], labels[:, c]) for c in range(labels.shape[1])]
    valid = [a for a in aps if not np.isnan(a)]
    return 100.0 * float(np.mean(valid)) if valid else float("nan")


class TaggingTask(Task):
    """Multi-label tagging of mean-pooled features (BCE; mAP in percent)."""

    name = "tagging"
    label_fields = ("tags",)
    metrics: dict[str, Direction] = {"map": "higher"}
    primary_metric = "map"
    pooled = True

    def __init__(self, classes: list[str]):
        if not classes:
            raise CorpusError("audio tagging needs a class list (vocab.json `tags`).")
        self.classes = list(classes)
        self.index = {c: i for i, c in enumerate(self.classes)}

    def build_head(self, input_dim: int) -> nn.Module:
        return nn.Linear(input_dim, len(self.classes))

    def _logits(self, head: nn.Module, batch: Batch) -> torch.Tensor:
        pooled = batch.pooled if batch.pooled is not None else mean_pool(batch.features, batch.lengths)
        return head(pooled).float()

    def targets(self, batch: Batch, device: torch.device) -> torch.Tensor:
        y = torch.zeros(len(batch.utterances), len(self.classes), device=device)
        for i, row in enumerate(batch.utterances):
            for tag in row.get("tags") or []:
                if tag in self.index:
                    y[i, self.index[tag]] = 1.0
        return y

    def loss(self, head: nn.Module, batch: Batch) -> torch.Tensor:
        logits = self._logits(head, batch)
        return F.binary_cross_entropy_with_logits(logits, self.targets(batch, logits.device))

    def predict(self, head: nn.Module, batch: Batch) -> list[dict[str, Any]]:
        logits = self._logits(head, batch)
        scores = torch.sigmoid(logits).cpu().numpy()
        labels = self.targets(batch, logits.device).cpu().numpy()
        return [
            {"id": row["id"], "scores": s.tolist(), "labels": y.tolist()}
            for row, s, y in zip(batch.utterances, scores, labels, strict=True)
        ]

    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, float]:
        scores = np.array([r["scores"] for r in records], dtype=np.float64)
        labels = np.array([r["labels"] for r in records], dtype=np.float64)
        return {"map": mean_average_precision(scores, labels)}


def run(
    upstream: UpstreamModel, corpora: dict[str, PreparedCorpus], params: NonspeechParams, ctx: StageContext
) -> FinetuneResult:
    """What :meth:`Nonspeech.finetune` does (see :mod:`plugins.finetune.nonspeech`)."""
    corpus = pick_corpus(corpora, params.corpus, "non-speech fine-tuning")
    corpus.require(TaggingTask.label_fields, "non-speech audio tagging")
    task = TaggingTask(corpus.vocab.get("tags", []))
    result = finetune_on_task(upstream, task, corpus, task.name, params, ctx, ("map", "higher"))
    ctx.log(f"non-speech tagging: best dev mAP {result.best_metrics.get('map', float('nan')):.2f}")
    return FinetuneResult(result.best_metrics, dict(task.metrics))
