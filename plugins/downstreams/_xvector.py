"""The ASV head (s3prl ``downstream/sv_voxceleb1/model.py``), imported when the head is built.

A connector (linear), the x-vector TDNN (five layers, contexts 5, 3, 3, 1, 1 at dilations 1, 2, 3, 1,
1, ReLU after each; written as dilated 1-D convolutions, which compute the same sums as s3prl's
unfold + linear), statistics pooling (mean and unbiased standard deviation over the valid frames,
which the TDNN shortens by 14), and the utterance extractor: two linear layers with ReLU in
training, the first one alone for the embedding that is scored. AM-softmax over the training
speakers (``s`` 30, margin 0.4 in s3prl).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: (kernel size, dilation) of each TDNN layer
CONTEXTS = ((5, 1), (3, 2), (3, 3), (1, 1), (1, 1))
#: frames the TDNN takes off a sequence
SHRINK = sum((k - 1) * d for k, d in CONTEXTS)


class XVectorHead(nn.Module):
    def __init__(self, input_dim: int, n_speakers: int, connector_dim: int = 512, agg_dim: int = 1500,
                 scale: float = 30.0, margin: float = 0.4):
        super().__init__()
        self.connector = nn.Linear(input_dim, connector_dim)
        widths = [connector_dim] * (len(CONTEXTS) - 1) + [agg_dim]
        self.tdnn = nn.ModuleList(
            nn.Conv1d(w_in, w_out, k, dilation=d)
            for (k, d), w_in, w_out in zip(CONTEXTS, [connector_dim, *widths[:-1]], widths, strict=True)
        )
        self.linear1 = nn.Linear(2 * agg_dim, connector_dim)
        self.linear2 = nn.Linear(connector_dim, connector_dim)
        self.speakers = nn.Parameter(torch.empty(connector_dim, n_speakers))
        nn.init.xavier_normal_(self.speakers)
        self.scale, self.margin = scale, margin

    def statistics(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """B × 2·agg_dim: the mean and standard deviation of the TDNN's output over the valid frames."""
        if features.shape[1] <= SHRINK:  # too short for the TDNN's context: zero frames past the end
            features = F.pad(features, (0, 0, 0, SHRINK + 1 - features.shape[1]))
        x = self.connector(features).transpose(1, 2)
        for layer in self.tdnn:
            x = torch.relu(layer(x))
        valid = (lengths.to(x.device) - SHRINK).clamp(min=1)
        mask = (torch.arange(x.shape[2], device=x.device)[None, :] < valid[:, None]).to(x.dtype)[:, None, :]
        n = valid.to(x.dtype)[:, None]
        mean = (x * mask).sum(dim=2) / n
        var = (((x - mean[:, :, None]) * mask) ** 2).sum(dim=2) / (n - 1).clamp(min=1)
        return torch.cat([mean, var.clamp(min=1e-12).sqrt()], dim=1)  # a dead channel: no infinite gradient

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The training embedding (both layers of the utterance extractor)."""
        hidden = torch.relu(self.linear1(self.statistics(features, lengths)))
        return torch.relu(self.linear2(hidden))

    def embed(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The embedding that is scored (the first layer of the utterance extractor), unit length."""
        return F.normalize(torch.relu(self.linear1(self.statistics(features, lengths))), dim=-1)

    def am_softmax(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """AM-softmax: cross-entropy over ``scale · cos`` with ``margin`` taken off the true speaker's cosine."""
        cosine = F.normalize(embeddings.float(), dim=1) @ F.normalize(self.speakers.float(), dim=0)
        logits = self.scale * (cosine - self.margin * F.one_hot(labels, cosine.shape[1]).to(cosine.dtype))
        return F.cross_entropy(logits, labels)
