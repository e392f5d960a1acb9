"""Query-by-example spoken term detection (SUPERB QbE): DTW matching scores (the metric is in
:mod:`harness.evaluation.twv`).

Matching follows s3prl's ``downstream/quesst14_dtw`` defaults: features standardised per dimension
over every query and document frame of the layer; the distance between a query frame and a document
frame is ``exp(cosine distance) - 1``, min-max normalised along each query frame's row; subsequence
DTW with the asymmetric step pattern (each query frame advances by one; the document by 0, 1 or 2;
the alignment may start and end anywhere in the document), its cost divided by the query's length;
the score is minus that cost, standardised over the documents of each query. Queries under five
frames score 0 everywhere. A query is matched against all documents of the layer at once: groups of
documents of similar length, padded, on the stage's device, one tensor step per query frame (the
recurrence runs along the query, so a document's columns and the documents of a group are computed
together).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

#: queries shorter than this many frames are not matched (s3prl's rule)
MIN_QUERY_FRAMES = 5
#: padded document frames per group (documents × longest); a query's distances to a group take
#: query frames × this many floats
GROUP_FRAMES = 2**18


def standardise(frames: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Each T×D tensor standardised with the mean and (unbiased) standard deviation of all their frames."""
    stacked = torch.cat(list(frames))
    mean, std = stacked.mean(dim=0), stacked.std(dim=0).clamp(min=1e-9)
    return [(x - mean) / std for x in frames]


class Documents:
    """The documents of one layer, unit-length frames, in groups of similar length padded on ``device``
    (sorted by length so that little of a group is padding); :meth:`costs` matches a query against all."""

    def __init__(self, frames: Sequence[torch.Tensor], device: torch.device | str = "cpu"):
        self.count = len(frames)
        self.device = torch.device(device)
        self.groups: list[tuple[list[int], torch.Tensor, torch.Tensor]] = []
        members: list[int] = []
        for i in sorted(range(self.count), key=lambda i: len(frames[i])):
            if members and (len(members) + 1) * len(frames[i]) > GROUP_FRAMES:
                self._add(frames, members)
                members = []
            members.append(i)
        if members:
            self._add(frames, members)

    def _add(self, frames: Sequence[torch.Tensor], members: list[int]) -> None:
        lengths = [len(frames[i]) for i in members]
        padded = torch.empty(len(members), max(lengths), frames[members[0]].shape[1], device=self.device)
        for k, i in enumerate(members):
            padded[k, : lengths[k]] = F.normalize(frames[i].to(device=self.device, dtype=torch.float32), dim=1)
            padded[k, lengths[k] :] = padded[k, 0]  # padding repeats a frame: row minima and maxima stay the document's
        self.groups.append((members, padded, torch.tensor(lengths, device=self.device)))

    def costs(self, query: torch.Tensor) -> torch.Tensor:
        """The query's subsequence DTW cost against every document (in the documents' order)."""
        out = torch.empty(self.count, dtype=torch.float64)
        q = F.normalize(query.to(device=self.device, dtype=torch.float32), dim=1)
        for members, padded, lengths in self.groups:
            out[members] = match_costs(q, padded, lengths).double().cpu()
        return out


def match_costs(query: torch.Tensor, docs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Subsequence DTW costs of one unit-length Nq×D query against C unit-length C×M×D documents, each
    padded past its length by repeating one of its own frames.

    Distances ``exp(1 - cos) - 1`` (cosine distance as scipy's), each query frame's row min-max
    normalised over the document; the asymmetric recurrence ``g[i, j] = d[i, j] + min(g[i-1, j],
    g[i-1, j-1], g[i-1, j-2])`` from ``g[0, j] = d[0, j]`` (any start), the cost ``min_j g[Nq-1, j] / Nq``
    (any end). Padding columns are never on a path. Written in place, a pass at a time: the distance
    tensor is the largest thing here.
    """
    c, m, _ = docs.shape
    dist = (query @ docs.reshape(c * m, -1).T).view(len(query), c, m)
    dist.neg_().add_(1.0).exp_().sub_(1.0)
    low = dist.amin(dim=2, keepdim=True)
    dist.sub_(low).div_((dist.amax(dim=2, keepdim=True)).clamp_(min=1e-9))
    dist.masked_fill_(torch.arange(m, device=docs.device)[None, None, :] >= lengths[None, :, None], torch.inf)
    step = torch.full((c, m + 2), torch.inf, device=docs.device)  # step[:, j + 2] = g[i-1, j]
    best = torch.empty(c, m, device=docs.device)
    step[:, 2:] = dist[0]
    for row in dist[1:]:
        torch.minimum(step[:, 1:-1], step[:, :-2], out=best)
        torch.minimum(best, step[:, 2:], out=best)
        torch.add(best, row, out=step[:, 2:])
    return step[:, 2:].amin(dim=1) / len(query)


def query_scores(query: torch.Tensor, docs: Documents) -> np.ndarray:
    """One query's scores over the documents: minus its DTW costs, standardised over the documents
    (0 everywhere for a query too short to match)."""
    if len(query) < MIN_QUERY_FRAMES:
        return np.zeros(docs.count)
    raw = -docs.costs(query).numpy()
    return (raw - raw.mean()) / max(float(raw.std()), 1e-9)
