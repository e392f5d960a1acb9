"""One metric of one model over its test items and seeds, in the form the bootstrap resamples.

A bootstrap replicate counts how often each item was drawn; a metric's ``resampled(counts)`` turns
those counts into its value on each seed. Three kinds cover every metric the harness reports:

- :class:`ItemStats`: a ratio of sums, ``100 · Σ_i num_i / Σ_i den_i`` (accuracy, error rates, F1,
  ABX, DER), from per-item ``[num, den]``;
- :class:`TrialStats`: the equal error rate over verification trials (ASV), from each trial's label
  and score, drawn by enrolment speaker (clusters of items) when the trials name one;
- :class:`GainStats`: a maximum over thresholds of a mean over items (QbE's MTWV), from each query's
  gain at every candidate threshold.

Items are stored per seed as ``{"id", "stats": {metric: ...}}``; :func:`from_items` reads them, the
kind following the stored form (a list ``[num, den]``, ``{"target", "score"[, "group"]}``,
``{"gains"}``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np

from harness.evaluation.verification import RocLayout
from harness.report.item_columns import ItemColumns, aligned, columns_of


class Resampled(ABC):
    """A metric's per-item results over seeds: ``ids`` (items, aligned across seeds) and ``seeds``."""

    ids: tuple[str, ...]
    seeds: tuple[int, ...]
    #: whether two models' results can be swapped item by item (the permutation test): true for ratios of
    #: sums; an EER or MTWV compares scores on each model's own scale, so they are compared by bootstrap
    permutable: ClassVar[bool] = False

    @property
    def n_items(self) -> int:
        return len(self.ids)

    @abstractmethod
    def resampled(self, counts: np.ndarray) -> np.ndarray:
        """The metric on each seed for each replicate: draw counts ``[b × items]`` -> ``[b × seeds]``."""

    def resampled_by_cluster(self, counts: np.ndarray) -> np.ndarray:
        """:meth:`resampled` for draws of whole clusters: ``counts [b × clusters]`` (each item counted as often
        as its cluster, :meth:`cluster_codes`) -> ``[b × seeds]``."""
        codes = self.cluster_codes()
        if codes is None:
            raise ValueError("these results are not clustered")
        return self.resampled(counts[:, codes])

    @abstractmethod
    def subset(self, ids: Sequence[str], seeds: Sequence[int]) -> Resampled:
        """The same metric on some items and seeds (in the order given)."""

    def cluster_codes(self) -> np.ndarray | None:
        """Each item's cluster as an index ``0..k-1`` when the bootstrap draws clusters of items rather
        than items (ASV: trials grouped by enrolment speaker), else None."""
        return None

    def ungrouped(self) -> Resampled:
        """The same results with items drawn one by one (for too few clusters to draw)."""
        return self

    @property
    def n_clusters(self) -> int | None:
        """How many clusters the bootstrap draws, or None when it draws items."""
        codes = self.cluster_codes()
        return None if codes is None else int(codes.max()) + 1

    def per_seed(self) -> np.ndarray:
        """The metric of each seed over all items."""
        return self.resampled(np.ones((1, self.n_items)))[0]

    @property
    def value(self) -> float:
        """The mean over seeds."""
        return float(np.mean(self.per_seed()))

    def _positions(self, ids: Sequence[str], seeds: Sequence[int]) -> tuple[list[int], list[int]]:
        pos = {i: k for k, i in enumerate(self.ids)}
        spos = {s: k for k, s in enumerate(self.seeds)}
        return [pos[i] for i in ids], [spos[s] for s in seeds]

    def _check(self, rows: int, cols: int) -> None:
        if (rows, cols) != (len(self.seeds), len(self.ids)):
            raise ValueError(f"per-item results are [{rows} × {cols}]; they must be [seeds={len(self.seeds)}, "
                             f"items={len(self.ids)}]")
        if len(set(self.ids)) != len(self.ids):
            raise ValueError("item ids must be unique")


#: fewer clusters than this cannot be drawn meaningfully (two speakers give three distinct draws)
MIN_CLUSTERS = 10


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """100 · num / den elementwise, NaN where den is 0."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den != 0, 100.0 * num / np.where(den != 0, den, 1.0), np.nan)


@dataclass(frozen=True)
class ItemStats(Resampled):
    """A ratio of sums: per-item ``[num, den]`` for each seed.

    ``num`` and ``den`` are float arrays of shape ``[seeds, items]``; column ``i`` is item ``ids[i]``
    and row ``s`` is seed ``seeds[s]``.
    """

    ids: tuple[str, ...]
    num: np.ndarray
    den: np.ndarray
    seeds: tuple[int, ...] = (0,)
    permutable: ClassVar[bool] = True

    def __post_init__(self) -> None:
        num = np.atleast_2d(np.asarray(self.num, dtype=float))
        den = np.atleast_2d(np.asarray(self.den, dtype=float))
        if num.shape != den.shape:
            raise ValueError(f"num {num.shape} and den {den.shape} differ in shape")
        self._check(*num.shape)
        object.__setattr__(self, "num", num)
        object.__setattr__(self, "den", den)

    @classmethod
    def from_items(cls, runs: Mapping[int, Sequence[Mapping]], metric: str) -> ItemStats:
        """From per-seed lists of item dicts ``{"id", "stats": {metric: [num, den]}}`` (see :func:`from_items`)."""
        out = from_items(runs, metric)
        if not isinstance(out, ItemStats):
            raise TypeError(f"{metric}: the items are not [num, den] pairs")
        return out

    def resampled(self, counts: np.ndarray) -> np.ndarray:
        return ratio(counts @ self.num.T, counts @ self.den.T)

    def per_seed(self) -> np.ndarray:
        """The metric of each seed, 100 · Σnum / Σden."""
        return ratio(self.num.sum(axis=1), self.den.sum(axis=1))

    def per_item(self) -> np.ndarray:
        """Each item's own value in percent, its stats pooled over seeds (Σ_s num / Σ_s den)."""
        return ratio(self.num.sum(axis=0), self.den.sum(axis=0))

    def subset(self, ids: Sequence[str], seeds: Sequence[int]) -> ItemStats:
        cols, rows = self._positions(ids, seeds)
        return ItemStats(tuple(ids), self.num[np.ix_(rows, cols)], self.den[np.ix_(rows, cols)], tuple(seeds))


@dataclass(frozen=True)
class TrialStats(Resampled):
    """The equal error rate (percent) over verification trials: ``targets [items]`` (1: same speaker,
    one list for every seed), ``scores [seeds × items]`` and optionally ``groups [items]``.

    Trials that share a speaker are not independent; with ``groups`` (the enrolment speaker of each
    trial) the bootstrap draws whole groups, Bolle et al.'s subset bootstrap, whose intervals do not
    shrink with the number of trials drawn from the same few speakers.
    """

    ids: tuple[str, ...]
    targets: np.ndarray
    scores: np.ndarray
    seeds: tuple[int, ...] = (0,)
    groups: tuple[str, ...] | None = None
    _codes: np.ndarray | None = field(init=False, repr=False, compare=False, default=None)
    _layouts: tuple[RocLayout, ...] = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        targets = np.asarray(self.targets, dtype=np.int64)
        scores = np.atleast_2d(np.asarray(self.scores, dtype=float))
        if targets.shape != (scores.shape[1],):
            raise ValueError(f"{targets.size} trial labels for {scores.shape[1]} scored trials")
        if self.groups is not None and len(self.groups) != targets.size:
            raise ValueError(f"{len(self.groups)} trial groups for {targets.size} trials")
        self._check(*scores.shape)
        object.__setattr__(self, "targets", targets)
        object.__setattr__(self, "scores", scores)
        codes = None
        if self.groups is not None:  # once: the draws, the signatures and the alignments all ask for them
            codes = np.unique(np.asarray(self.groups, dtype=str), return_inverse=True)[1].astype(np.int64)
        object.__setattr__(self, "_codes", codes)
        # sorted once, with each block's trials per cluster where the draws are by cluster
        object.__setattr__(self, "_layouts", tuple(RocLayout(targets, row, clusters=codes) for row in scores))

    def resampled(self, counts: np.ndarray) -> np.ndarray:
        return np.stack([layout.eer(counts) for layout in self._layouts], axis=1)

    def resampled_by_cluster(self, counts: np.ndarray) -> np.ndarray:
        if self._codes is None:
            raise ValueError("these trials are not grouped")
        return np.stack([layout.eer_by_cluster(counts) for layout in self._layouts], axis=1)

    def subset(self, ids: Sequence[str], seeds: Sequence[int]) -> TrialStats:
        cols, rows = self._positions(ids, seeds)
        groups = None if self.groups is None else tuple(self.groups[c] for c in cols)
        return TrialStats(tuple(ids), self.targets[cols], self.scores[np.ix_(rows, cols)], tuple(seeds), groups)

    def cluster_codes(self) -> np.ndarray | None:
        return self._codes

    def ungrouped(self) -> TrialStats:
        return replace(self, groups=None)


@dataclass(frozen=True)
class GainStats(Resampled):
    """``max(0, max_k mean_i gains[i, k])``: each item's gain at a seed's candidate thresholds, one
    ``[items × thresholds]`` array per seed (the thresholds are the seed's own; see
    :func:`harness.evaluation.twv.query_gains`)."""

    ids: tuple[str, ...]
    gains: tuple[np.ndarray, ...]
    seeds: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        gains = tuple(np.asarray(g, dtype=float).reshape(len(self.ids), -1) for g in self.gains)
        self._check(len(gains), len(self.ids))
        object.__setattr__(self, "gains", gains)

    def resampled(self, counts: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            weights = counts / counts.sum(axis=1, keepdims=True)
        return np.stack([(weights @ g).max(axis=1, initial=0.0) for g in self.gains], axis=1)

    def subset(self, ids: Sequence[str], seeds: Sequence[int]) -> GainStats:
        cols, rows = self._positions(ids, seeds)
        return GainStats(tuple(ids), tuple(self.gains[r][cols] for r in rows), tuple(seeds))


def from_items(runs: Mapping[int, Sequence[Mapping] | ItemColumns], metric: str) -> Resampled:
    """A metric's per-item results from per-seed lists of item dicts ``{"id", "stats": {metric: ...}}`` (or
    their :class:`~harness.report.item_columns.ItemColumns`).

    Only items present for every seed are kept (in the first seed's order). The stored form gives the
    kind: ``[num, den]`` (:class:`ItemStats`), ``{"target": 0|1, "score": s}`` with an optional
    ``"group"`` (:class:`TrialStats`) or ``{"gains": [...]}`` (:class:`GainStats`).
    """
    if not runs:
        raise ValueError("no runs given")
    seeds = tuple(runs)
    per_seed = {s: v if isinstance(v, ItemColumns) else columns_of(v) for s, v in runs.items()}
    ids, columns = aligned(per_seed, metric)
    if not ids:
        return ItemStats((), np.zeros((len(seeds), 0)), np.zeros((len(seeds), 0)), seeds)
    kinds = sorted({c.kind for c in columns})
    if len(kinds) > 1:
        raise ValueError(f"{metric}: the seeds store their items in different forms ({', '.join(kinds)})")
    first = columns[0]
    if first.kind == "trial":
        for other in columns[1:]:
            if not np.array_equal(other.targets, first.targets) or other.groups != first.groups:
                raise ValueError(f"{metric}: the seeds label or group the same trials differently")
        return TrialStats(ids, first.targets, np.stack([c.values for c in columns]), seeds, first.groups)
    if first.kind == "gains":
        return GainStats(ids, tuple(c.values for c in columns), seeds)
    num, den = (np.stack([c.values[:, k] for c in columns]) for k in (0, 1))
    return ItemStats(ids, num, den, seeds)


def align(a: Resampled, b: Resampled) -> tuple[Resampled, Resampled]:
    """Restrict two models' results to the items and seeds they share (in ``a``'s order)."""
    b_ids = set(b.ids)
    ids = [i for i in a.ids if i in b_ids]
    seeds = [s for s in a.seeds if s in set(b.seeds)]
    if not ids or not seeds:
        raise ValueError("the two models share no items or no seeds")
    a2, b2 = a.subset(ids, seeds), b.subset(ids, seeds)
    codes_a, codes_b = a2.cluster_codes(), b2.cluster_codes()
    if (codes_a is None) != (codes_b is None) or (codes_a is not None and not np.array_equal(codes_a, codes_b)):
        raise ValueError("the two models group their shared items differently")
    return a2, b2
