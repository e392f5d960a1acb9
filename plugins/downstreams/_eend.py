"""The SUPERB speaker-diarization head (s3prl ``downstream/diarization``, after Hitachi's EEND): features
brought to the label frame rate and cut into chunks, a unidirectional LSTM, a linear layer with one
logit per speaker; trained with the permutation-invariant binary cross-entropy."""

from __future__ import annotations

from itertools import permutations

import torch
import torch.nn.functional as F
from torch import nn


class DiarizationHead(nn.Module):
    """LSTM (``rnn_layers`` of ``hidden_size``; none at 0) then linear to ``n_speakers`` logits per frame."""

    def __init__(self, input_dim: int, n_speakers: int, hidden_size: int, rnn_layers: int):
        super().__init__()
        self.rnn = nn.LSTM(input_dim, hidden_size, num_layers=rnn_layers, batch_first=True) if rnn_layers else None
        self.linear = nn.Linear(hidden_size if rnn_layers else input_dim, n_speakers)

    def forward(self, chunks: torch.Tensor) -> torch.Tensor:
        """K×C×D chunk features -> K×C×S logits (unidirectional, so a chunk's padding never reaches its frames)."""
        x = chunks.float()
        if self.rnn is not None:
            x, _ = self.rnn(x)
        return self.linear(x)


def label_rate_chunks(features: torch.Tensor, lengths: torch.Tensor, label_frames: list[int],
                      chunk_size: int) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
    """The B×T×D ``features`` (valid for ``lengths`` frames) at each item's label rate, cut into chunks.

    As s3prl's ``_match_length``: each frame is repeated ``round(labels / frames)`` times (20-ms upstream
    frames on 10-ms labels: twice), then the sequence is cut to the label count or extended with its last
    frame. The result is cut into chunks of ``chunk_size`` label frames (the last one shorter), as s3prl
    cuts recordings. Returns K×C×D chunks, their K lengths, and each chunk's (item, first label frame).
    """
    device = features.device
    spans = [(i, start) for i, n in enumerate(label_frames) for start in range(0, n, chunk_size)]
    item = torch.tensor([i for i, _ in spans], device=device)
    start = torch.tensor([s for _, s in spans], device=device)
    n_labels = torch.tensor(label_frames, device=device)
    chunk_lengths = torch.minimum(n_labels[item] - start, torch.tensor(chunk_size, device=device))
    n_frames = lengths.to(device)
    factor = torch.clamp(torch.round(n_labels / n_frames.clamp(min=1)), min=1).long()
    steps = torch.arange(int(chunk_lengths.max()), device=device).view(1, -1)
    label_pos = start.view(-1, 1) + torch.minimum(steps, (chunk_lengths - 1).view(-1, 1))
    frame = torch.minimum(label_pos // factor[item].view(-1, 1), (n_frames[item] - 1).clamp(min=0).view(-1, 1))
    return features[item.view(-1, 1), frame], chunk_lengths, spans


def pit_loss(logits: torch.Tensor, labels: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """s3prl's permutation-invariant loss: per chunk, the binary cross-entropy (mean over speakers, summed
    over its valid frames) under the speaker order that makes it smallest; summed over chunks and
    divided by the valid frames. ``logits`` and 0/1 ``labels`` are K×C×S."""
    valid = (torch.arange(logits.shape[1], device=logits.device).view(1, -1) < lengths.view(-1, 1)).float()
    losses = []
    for order in permutations(range(labels.shape[-1])):
        bce = F.binary_cross_entropy_with_logits(logits.float(), labels[..., list(order)].float(), reduction="none")
        losses.append((bce.mean(dim=-1) * valid).sum(dim=1))
    return torch.stack(losses).min(dim=0).values.sum() / valid.sum()
