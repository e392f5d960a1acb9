"""The task heads (``torch.nn.Module``) of :mod:`harness.evaluation.tasks`, and CTC decoding.

Kept apart so that defining tasks (and registering the downstream plugins that subclass them)
does not import torch; a task imports this module when it builds its head.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from harness.models.speech_encoder import mean_pool

__all__ = ["BiLSTM", "CTCHead", "UtteranceHead", "ctc_greedy", "reverse_padded"]


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
