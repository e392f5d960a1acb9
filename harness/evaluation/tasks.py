"""Task building blocks shared by the downstream plugins and supervised fine-tuning.

Two families cover the SUPERB tasks here:

- :class:`UtteranceTask` (SID, ER): projection, mean pooling over valid frames, linear classifier,
  cross-entropy; accuracy. The head's first operation is linear, so it also trains on cached
  per-layer time means (``Batch.pooled``) with the same result (``pooled = True``).
- :class:`CTCTask` (PR, SF, ASR): projection, optional BiLSTM layers, linear over a token
  vocabulary with the CTC blank at index 0; greedy decoding (best path, repeats merged, blanks
  removed), as s3prl decodes for its reported numbers.

A plugin subclasses one of them with its label encoding and metric; the same object serves the
frozen-upstream probe and supervised fine-tuning. The heads are in :mod:`harness.evaluation.heads`;
this module imports torch only where a task computes, so plugins that subclass these tasks
register without loading it.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from harness.core.errors import CorpusError
from harness.core.interfaces import Batch, Direction, SpecAugSettings, Task
from harness.evaluation.metrics import ratio

if TYPE_CHECKING:
    import torch
    from torch import nn

# --------------------------------------------------------------------------- utterance level


class UtteranceTask(Task):
    """Single-label classification of whole utterances by a manifest field (``label_field``)."""

    label_field: str = ""
    metrics: dict[str, Direction] = {"acc": "higher"}
    primary_metric = "acc"
    pooled = True

    def __init__(self, classes: Sequence[str], projector_dim: int = 256):
        if len(classes) < 2:
            raise CorpusError(
                f"{self.name} needs at least two classes of {self.label_field!r}; the corpus has {len(classes)}."
            )
        self.classes = list(classes)
        self.index = {c: i for i, c in enumerate(self.classes)}
        self.projector_dim = projector_dim
        self.label_fields = (self.label_field,)

    def build_head(self, input_dim: int) -> nn.Module:
        from harness.evaluation.heads import UtteranceHead

        return UtteranceHead(input_dim, len(self.classes), self.projector_dim)

    def label_of(self, row: dict[str, Any]) -> str:
        """The class of one utterance (the ``label_field`` value; a subclass may map it)."""
        return str(row[self.label_field])

    def labels(self, rows: list[dict[str, Any]]) -> torch.Tensor:
        import torch

        try:
            return torch.tensor([self.index[self.label_of(r)] for r in rows])
        except KeyError as exc:
            raise CorpusError(
                f"{self.name}: utterance label {exc.args[0]!r} is not among the {len(self.classes)} "
                f"training classes of {self.label_field!r}; the test set must use the training classes."
            ) from None

    def logits(self, head: nn.Module, batch: Batch) -> torch.Tensor:
        if batch.pooled is not None:
            return head.forward_pooled(batch.pooled)
        assert batch.features is not None and batch.lengths is not None
        return head(batch.features, batch.lengths)

    def loss(self, head: nn.Module, batch: Batch) -> torch.Tensor:
        import torch.nn.functional as F

        logits = self.logits(head, batch)
        return F.cross_entropy(logits.float(), self.labels(batch.utterances).to(logits.device))

    def predict(self, head: nn.Module, batch: Batch) -> list[dict[str, Any]]:
        pred = self.logits(head, batch).argmax(dim=-1).cpu().tolist()
        out = []
        for row, p in zip(batch.utterances, pred, strict=True):
            ref = self.label_of(row)
            hyp = self.classes[p]
            out.append({"id": row["id"], "ref": ref, "hyp": hyp, "stats": {"acc": [float(ref == hyp), 1.0]}})
        return out

    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, float]:
        return {"acc": ratio([r["stats"]["acc"] for r in records])}


# --------------------------------------------------------------------------- CTC


class CTCTask(Task):
    """A CTC task over ``vocab`` (index 0 is the blank). Subclasses encode targets and score strings."""

    def __init__(
        self,
        vocab: Sequence[str],
        project_dim: int,
        lstm_dims: Sequence[int] = (),
        dropout: float = 0.2,
        downsample: int = 1,
        specaug: SpecAugSettings | None = None,
    ):
        self.specaug = specaug
        self.vocab = ["<blank>", *vocab]
        self.index = {t: i for i, t in enumerate(self.vocab)}
        self.project_dim = project_dim
        self.lstm_dims = tuple(lstm_dims)
        self.dropout = dropout
        self.downsample = downsample

    def build_head(self, input_dim: int) -> nn.Module:
        from harness.evaluation.heads import CTCHead

        return CTCHead(input_dim, len(self.vocab), self.project_dim, self.lstm_dims, self.dropout, self.downsample)

    @abstractmethod
    def target(self, row: dict[str, Any]) -> list[int]:
        """Token ids of the reference (no blank)."""

    def length_key(self, row: dict[str, Any]) -> float:
        """The reference's token count: s3prl sorts its CTC corpora by label length."""
        return float(len(self.target(row)))

    @abstractmethod
    def render(self, ids: list[int]) -> Any:
        """What the metric compares (a phone list, a string)."""

    @abstractmethod
    def item_stats(self, ref: Any, hyp: Any) -> dict[str, list[float]]:
        """Per-item ``{metric: [numerator, denominator]}``."""

    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, float]:
        return {name: ratio([r["stats"][name] for r in records]) for name in self.metrics}

    def _forward(self, head: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        if batch.features is None or batch.lengths is None:
            raise ValueError(f"{self.name} trains on frames; the batch has none")
        import torch.nn.functional as F

        logits, lengths = head(batch.features, batch.lengths)
        return F.log_softmax(logits.float(), dim=-1), lengths

    def loss(self, head: nn.Module, batch: Batch) -> torch.Tensor:
        import torch
        import torch.nn.functional as F

        log_probs, lengths = self._forward(head, batch)
        targets = [self.target(r) for r in batch.utterances]
        flat = torch.tensor([t for seq in targets for t in seq], dtype=torch.long)
        target_lengths = torch.tensor([len(seq) for seq in targets], dtype=torch.long)
        # SUPERB: CTCLoss(blank=0, zero_infinity=True), mean over the batch of per-target-length losses
        return F.ctc_loss(
            log_probs.transpose(0, 1),
            flat.to(log_probs.device),
            lengths.cpu(),
            target_lengths,
            blank=0,
            zero_infinity=True,
        )

    def predict(self, head: nn.Module, batch: Batch) -> list[dict[str, Any]]:
        from harness.evaluation.heads import ctc_greedy

        log_probs, lengths = self._forward(head, batch)
        hyps = ctc_greedy(log_probs, lengths)
        out = []
        for row, hyp_ids in zip(batch.utterances, hyps, strict=True):
            ref = self.render(self.target(row))
            hyp = self.render(hyp_ids)
            out.append({"id": row["id"], "ref": ref, "hyp": hyp, "stats": self.item_stats(ref, hyp)})
        return out


def char_vocab(texts: Sequence[str]) -> list[str]:
    """Sorted characters of ``texts`` (the space included), the character vocabulary of the
    fine-tuning guide (built from the training transcriptions)."""
    chars = sorted({c for t in texts for c in t})
    if not chars:
        raise CorpusError("the training split has no transcription text to build a character vocabulary from.")
    return chars
