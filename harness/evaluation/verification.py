"""Speaker verification scoring: trial lists and the equal error rate (SUPERB ASV).

A trial is ``(label, enrolment id, test id)``, label 1 when both utterances have one speaker. The
equal error rate is the one speaker-verification recipes compute with scikit-learn and scipy
(``roc_curve``, then ``brentq`` on ``1 - x - interp1d(fpr, tpr)(x)``): the ROC curve over every
distinct score, then the false-positive rate x at which the miss rate 1 − TPR(x) equals x, with
TPR read off the curve by linear interpolation. Written here in numpy (one sort, and the crossing
solved on its segment) because scikit-learn is not a dependency; the tests compare it with that
computation. :func:`weighted_eer` computes it for many weightings of one trial list at once (each
trial counted as often as its weight says), which is what a bootstrap over trials needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from harness.core.errors import CorpusError

Trial = tuple[int, str, str]


def _accepts(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true accepts at each distinct score as the threshold, from the highest score down."""
    order = np.argsort(-scores, kind="stable")
    ends = np.r_[np.flatnonzero(np.diff(scores[order])), len(scores) - 1]  # last index of each run of ties
    tps = np.cumsum(labels[order] == 1)[ends]
    return ends + 1 - tps, tps


class RocLayout:
    """One trial list's scores sorted once, for the EER of many weightings of it at once (a bootstrap).

    The sorted trials are cut into blocks of about ``block`` trials, each ending where a run of equal
    scores ends (a point of the ROC curve). A weighting's accepts at the block ends come from one sum
    per block; the crossing of 1 − TPR and FPR lies in the first block whose end is at or past it, and
    only that block is summed trial by trial. The result is the full curve's, exactly (integer
    weights add up exactly), at a fraction of the passes over the weights that a running sum over all
    trials takes (``benchmarks/bench_trial_bootstrap.py``).
    """

    def __init__(self, labels: Sequence[int], scores: Sequence[float], block: int = 256,
                 clusters: np.ndarray | None = None):
        y, s = np.asarray(labels), np.asarray(scores, dtype=np.float64)
        if y.shape != s.shape or y.ndim != 1 or y.size == 0:
            raise ValueError(f"{y.size} labels for {s.size} scores")
        self.order = np.argsort(-s, kind="stable")
        self.target = (y[self.order] == 1).astype(np.float64)
        self.ends = np.r_[np.flatnonzero(np.diff(s[self.order])), s.size - 1]  # last index of each run of ties
        wanted = np.arange(block - 1, s.size, block)
        self.bounds = np.unique(np.r_[self.ends[np.minimum(np.searchsorted(self.ends, wanted), self.ends.size - 1)],
                                      s.size - 1])  # each block's last position, at the end of a run
        self.starts = np.r_[0, self.bounds[:-1] + 1]
        self.clusters: np.ndarray | None = None
        if clusters is not None:  # each trial's cluster (0..k-1): per cluster and block, its trials and targets
            codes = np.asarray(clusters, dtype=np.int64)
            if codes.shape != y.shape:
                raise ValueError(f"{codes.size} cluster codes for {y.size} trials")
            self.clusters = codes[self.order]
            block_of = np.searchsorted(self.bounds, np.arange(s.size))
            k, n_blocks = int(codes.max()) + 1, self.bounds.size
            self.cluster_trials = np.zeros((k, n_blocks))
            np.add.at(self.cluster_trials, (self.clusters, block_of), 1.0)
            self.cluster_targets = np.zeros((k, n_blocks))
            np.add.at(self.cluster_targets, (self.clusters, block_of), self.target)

    @property
    def size(self) -> int:
        return self.order.size

    def eer(self, weights: np.ndarray) -> np.ndarray:
        """The EER in percent of each row of ``weights`` ``[rows × trials]`` (trials in the given order): the
        EER of the trial list in which trial i appears ``weights[r, i]`` times. NaN for a row that keeps
        trials of one kind only."""
        w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        if w.shape[1] != self.size:
            raise ValueError(f"weights have {w.shape[1]} columns for {self.size} trials")
        w = w[:, self.order]
        tp_blocks = np.cumsum(np.add.reduceat(w * self.target, self.starts, axis=1), axis=1)
        all_blocks = np.cumsum(np.add.reduceat(w, self.starts, axis=1), axis=1)
        return self._eer(tp_blocks, all_blocks - tp_blocks, lambda rows, lo, hi: w[rows, lo:hi])

    def eer_by_cluster(self, counts: np.ndarray) -> np.ndarray:
        """:meth:`eer` of weights that give every trial its cluster's count (``counts [rows × clusters]``, a
        bootstrap that draws whole clusters), without forming the ``[rows × trials]`` weights: the block
        sums are one product with the per-cluster block counts."""
        if self.clusters is None:
            raise ValueError("this layout was built without clusters")
        c = np.atleast_2d(np.asarray(counts, dtype=np.float64))
        if c.shape[1] != self.cluster_trials.shape[0]:
            raise ValueError(f"counts have {c.shape[1]} columns for {self.cluster_trials.shape[0]} clusters")
        tp_blocks = np.cumsum(c @ self.cluster_targets, axis=1)
        all_blocks = np.cumsum(c @ self.cluster_trials, axis=1)
        codes = self.clusters
        return self._eer(tp_blocks, all_blocks - tp_blocks, lambda rows, lo, hi: c[np.ix_(rows, codes[lo:hi])])

    def _eer(self, tp_blocks: np.ndarray, fp_blocks: np.ndarray, local_weights) -> np.ndarray:
        """The EER of each row from its accepts at the block ends; ``local_weights(rows, lo, hi)`` gives those
        rows' weights of the sorted trials lo..hi-1, summed trial by trial in the crossing block only."""
        targets, others = tp_blocks[:, -1], fp_blocks[:, -1]
        valid = (targets > 0) & (others > 0)
        out = np.full(tp_blocks.shape[0], np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            # the curve starts at (0, 0), where FPR + TPR is 0 < 1, and ends at (1, 1): the first block end at or
            # past the crossing
            crossing_block = np.argmax(fp_blocks / others[:, None] + tp_blocks / targets[:, None] >= 1.0, axis=1)
        for j in np.unique(crossing_block[valid]):
            rows = np.flatnonzero(valid & (crossing_block == j))
            lo, hi = self.starts[j], self.bounds[j] + 1
            tp0 = tp_blocks[rows, j - 1] if j > 0 else np.zeros(rows.size)
            fp0 = fp_blocks[rows, j - 1] if j > 0 else np.zeros(rows.size)
            local = local_weights(rows, lo, hi)
            tp = tp0[:, None] + np.cumsum(local * self.target[lo:hi], axis=1)
            fp = fp0[:, None] + np.cumsum(local, axis=1) - (tp - tp0[:, None])
            points = self.ends[(self.ends >= lo) & (self.ends < hi)] - lo
            # the block's previous end (or the origin) comes first: it is before the crossing
            out[rows] = _crossing(np.hstack([fp0[:, None], fp[:, points]]) / others[rows, None],
                                  np.hstack([tp0[:, None], tp[:, points]]) / targets[rows, None])
        return out


def _crossing(fpr: np.ndarray, tpr: np.ndarray) -> np.ndarray:
    """The EER in percent of each row of ROC points whose first point is before the crossing of 1 − TPR and
    FPR and whose last is at or past it, TPR read off the segments by linear interpolation."""
    rows = np.arange(fpr.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.argmax(fpr + tpr >= 1.0, axis=1)  # the first point at or past the crossing (never the first)
        f0, f1, t0, t1 = fpr[rows, k - 1], fpr[rows, k], tpr[rows, k - 1], tpr[rows, k]
        slope = (t1 - t0) / (f1 - f0)
        crossing = (1.0 - t0 + slope * f0) / (1.0 + slope)
        # on the crossing point itself: its x; on a vertical step (TPR jumps across 1 - x): that x
        return 100.0 * np.where(f1 + t1 == 1.0, f1, np.where(f1 == f0, f0, crossing))


def weighted_eer(labels: Sequence[int], scores: Sequence[float], weights: np.ndarray) -> np.ndarray:
    """The EER in percent of each row of ``weights`` ``[rows × trials]`` (see :meth:`RocLayout.eer`)."""
    return RocLayout(labels, scores).eer(weights)


def equal_error_rate(labels: Sequence[int], scores: Sequence[float]) -> float:
    """The EER in percent: the x where 1 − TPR(x) = x on the linearly interpolated ROC curve."""
    y = np.asarray(labels)
    if y.size == 0 or y.min() == y.max():
        raise CorpusError("speaker verification needs trials of both kinds (same speaker and different "
                          "speakers); the trial list holds only one.")
    return float(weighted_eer(y, scores, np.ones((1, y.size)))[0])


def min_dcf(labels: Sequence[int], scores: Sequence[float], p_target: float = 0.01, c_miss: float = 1.0,
            c_fa: float = 1.0) -> float:
    """The minimum normalized detection cost over thresholds (NIST SRE; VoxSRC uses ``p_target`` 0.05):
    ``min_θ [c_miss · P_miss(θ) · p_target + c_fa · P_fa(θ) · (1 − p_target)]`` divided by the cost of
    the better of always accepting and always rejecting."""
    y = np.asarray(labels)
    if y.size == 0 or y.min() == y.max():
        raise CorpusError("the detection cost needs trials of both kinds (same speaker and different speakers).")
    fps, tps = _accepts(y, np.asarray(scores, dtype=np.float64))
    p_miss = np.r_[1.0, 1.0 - tps / tps[-1]]  # with the threshold above every score: all rejected
    p_fa = np.r_[0.0, fps / fps[-1]]
    cost = c_miss * p_miss * p_target + c_fa * p_fa * (1.0 - p_target)
    return float(cost.min() / min(c_miss * p_target, c_fa * (1.0 - p_target)))


def all_pairs(speakers: dict[str, str], max_trials: int, seed: int = 0) -> list[Trial]:
    """Every pair of the utterances (id -> speaker) as a trial, ids in sorted order; a seeded sample of
    ``max_trials`` of them when there are more."""
    ids = sorted(speakers)
    n = len(ids)
    total = n * (n - 1) // 2
    if total > max_trials:
        flat = np.sort(np.random.default_rng([seed, 11]).choice(total, size=max_trials, replace=False))
    else:
        flat = np.arange(total)
    # pair index -> (i, j), i < j, in the order (0, 1), (0, 2), ..., (1, 2), ...
    starts = np.cumsum(np.r_[0, np.arange(n - 1, 0, -1)])
    first = np.searchsorted(starts, flat, side="right") - 1
    second = flat - starts[first] + first + 1
    return [(int(speakers[ids[i]] == speakers[ids[j]]), ids[i], ids[j]) for i, j in zip(first, second, strict=True)]


def read_trials(path: Path) -> list[Trial]:
    """A trial list: ``<0|1> <id> <id>`` lines (VoxCeleb's and the prepared corpus's ``<split>.trials``) or
    ``<id> <id> <target|nontarget>`` lines (Kaldi's)."""
    trials = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) == 3 and parts[0] in ("0", "1"):
            trials.append((int(parts[0]), parts[1], parts[2]))
        elif len(parts) == 3 and parts[2] in ("target", "nontarget"):
            trials.append((int(parts[2] == "target"), parts[0], parts[1]))
        else:
            raise CorpusError(f"{path} line {n} is neither '<0|1> <utterance id> <utterance id>' nor "
                              "'<utterance id> <utterance id> <target|nontarget>'.")
    return trials


def read_scores(path: Path) -> dict[tuple[str, str], float]:
    """A system's scores: ``<enrolment id> <test id> <score>`` lines."""
    scores: dict[tuple[str, str], float] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            value = float(parts[2]) if len(parts) == 3 else None
        except ValueError:
            value = None
        if value is None or not np.isfinite(value):
            raise CorpusError(f"{path} line {n} is not '<enrolment id> <test id> <score>' with a finite score.")
        scores[(parts[0], parts[1])] = value
    return scores


def write_trials(path: Path, trials: Sequence[Trial]) -> None:
    path.write_text("".join(f"{label} {a} {b}\n" for label, a, b in trials), encoding="utf-8")


def write_scores(path: Path, trials: Sequence[Trial], scores: Sequence[float]) -> None:
    """``<enrolment id> <test id> <score>`` lines (what :func:`read_scores` reads), scores in full precision."""
    path.write_text("".join(f"{a} {b} {float(s)!r}\n" for (_, a, b), s in zip(trials, scores, strict=True)),
                    encoding="utf-8")
