"""Task building blocks shared by the downstream plugins and supervised fine-tuning.

Two families cover the SUPERB tasks here:

- :class:`UtteranceTask` (SID, ER): projection, mean pooling over valid frames, linear classifier,
  cross-entropy; accuracy. The head's first operation is linear, so it also trains on cached
  per-layer time means (``Batch.pooled``) with the same result (``pooled = True``).
- :class:`CTCTask` (PR, SF, ASR): projection, optional BiLSTM layers, linear over a token
  vocabulary with the CTC blank at index 0; greedy decoding (best path, repeats merged, blanks
  removed), as s3prl decodes for its reported numbers.

A plugin subclasses one of them with its label encoding and metric; the same object serves the
frozen-upstream probe and supervised fine-tuning.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from harness.core.errors import CorpusError
from harness.core.interfaces import Batch, Direction, Task
from harness.evaluation.metrics import ratio
from harness.models.speech_encoder import mean_pool
from harness.training.specaug import SpecAugSettings

# --------------------------------------------------------------------------- utterance level


class UtteranceHead(nn.Module):
    """SUPERB ``UtteranceLevel`` with ``MeanPooling``: projector -> mean over valid frames -> linear."""

    def __init__(self, input_dim: int, n_classes: int, projector_dim: int = 256):
        super().__init__()
        self.projector = nn.Linear(input_dim, projector_dim)
        self.classifier = nn.Linear(projector_dim, n_classes)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.classifier(mean_pool(self.projector(features), lengths))

    def forward_pooled(self, pooled: torch.Tensor) -> torch.Tensor:
        """Same logits from the time mean of the features (the projector is affine)."""
        return self.classifier(self.projector(pooled))


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
        return UtteranceHead(input_dim, len(self.classes), self.projector_dim)

    def labels(self, rows: list[dict[str, Any]]) -> torch.Tensor:
        try:
            return torch.tensor([self.index[str(r[self.label_field])] for r in rows])
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
        logits = self.logits(head, batch)
        return F.cross_entropy(logits.float(), self.labels(batch.utterances).to(logits.device))

    def predict(self, head: nn.Module, batch: Batch) -> list[dict[str, Any]]:
        pred = self.logits(head, batch).argmax(dim=-1).cpu().tolist()
        out = []
        for row, p in zip(batch.utterances, pred, strict=True):
            ref = str(row[self.label_field])
            hyp = self.classes[p]
            out.append({"id": row["id"], "ref": ref, "hyp": hyp, "stats": {"acc": [float(ref == hyp), 1.0]}})
        return out

    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, float]:
        return {"acc": ratio([r["stats"]["acc"] for r in records])}


# --------------------------------------------------------------------------- CTC


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse the first ``lengths[b]`` frames of each sequence of B×T×D ``x`` (padding stays last)."""
    t = torch.arange(x.shape[1], device=x.device).view(1, -1)
    n = lengths.to(x.device).view(-1, 1)
    idx = torch.where(t < n, n - 1 - t, t)
    return x.gather(1, idx.unsqueeze(-1).expand_as(x))


class BiLSTM(nn.Module):
    """A bidirectional LSTM layer over padded sequences, equal to running it on packed sequences.

    The forward direction never sees the padding that follows a sequence; the backward direction
    runs a second LSTM on each sequence reversed within its own length. Done this way rather than
    with ``pack_padded_sequence`` because the packed LSTM's backward pass on CPU is about ten times
    slower (0.2-0.3 s against 0.02 s for 16×150 frames of 64 units).
    """

    def __init__(self, input_dim: int, hidden_dim: int):
        super().__init__()
        self.fwd = nn.LSTM(input_dim, hidden_dim, batch_first=True)
        self.bwd = nn.LSTM(input_dim, hidden_dim, batch_first=True)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out_f, _ = self.fwd(x)
        out_b, _ = self.bwd(reverse_padded(x, lengths))
        return torch.cat([out_f, reverse_padded(out_b, lengths)], dim=-1)


class CTCHead(nn.Module):
    """Projection, optional bidirectional LSTM layers (s3prl ``RNNs``), linear to the vocabulary.

    ``downsample`` k > 1 concatenates k consecutive projected frames before the first LSTM (s3prl's
    ``sample_style: concat``), dividing the output frame rate by k. ``forward`` returns the logits
    and their valid lengths.
    """

    def __init__(
        self,
        input_dim: int,
        vocab_size: int,
        project_dim: int,
        lstm_dims: Sequence[int] = (),
        dropout: float = 0.2,
        downsample: int = 1,
    ):
        super().__init__()
        self.projector = nn.Linear(input_dim, project_dim)
        self.downsample = max(1, int(downsample))
        layers = []
        last = project_dim * self.downsample
        for dim in lstm_dims:
            layers.append(BiLSTM(last, dim))
            last = 2 * dim
        self.lstms = nn.ModuleList(layers)
        self.dropout = nn.Dropout(dropout) if lstm_dims else nn.Identity()
        self.output = nn.Linear(last, vocab_size)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.projector(features)
        k = self.downsample
        if k > 1:
            b, t, d = x.shape
            x = F.pad(x, (0, 0, 0, (-t) % k)).reshape(b, -1, k * d)
            lengths = torch.div(lengths + k - 1, k, rounding_mode="floor")
        for lstm in self.lstms:
            x = self.dropout(lstm(x, lengths))
        return self.output(x), lengths


def ctc_greedy(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int = 0) -> list[list[int]]:
    """Best-path decoding: argmax per frame, repeats merged, blanks removed."""
    best = log_probs.argmax(dim=-1).cpu()
    out = []
    for seq, n in zip(best, lengths.cpu().tolist(), strict=True):
        ids = seq[:n].tolist()
        out.append([t for i, t in enumerate(ids) if t != blank and (i == 0 or t != ids[i - 1])])
    return out


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
        return CTCHead(input_dim, len(self.vocab), self.project_dim, self.lstm_dims, self.dropout, self.downsample)

    @abstractmethod
    def target(self, row: dict[str, Any]) -> list[int]:
        """Token ids of the reference (no blank)."""

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
        logits, lengths = head(batch.features, batch.lengths)
        return F.log_softmax(logits.float(), dim=-1), lengths

    def loss(self, head: nn.Module, batch: Batch) -> torch.Tensor:
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
