"""The maximum term-weighted value (SUPERB QbE's metric).

Term-weighted value at threshold θ, over the queries with at least one true document q:
``TWV(θ) = 1 - mean_q [P_miss(q, θ) + β · P_fa(q, θ)]``, where a document counts as detected when its
score exceeds θ, ``P_miss = 1 - hits / true documents`` and ``P_fa = false alarms / (documents - true
documents)``; MTWV is its maximum over θ (θ above every score gives 0). β = 12.49 is QUESST 2014's
(P_target 0.0008, C_miss 100, C_fa 1). This is the definition; the official scorer
(``score-TWV-Cnxe.sh``) is the reference for numbers to publish, and ``harness`` writes the detections
in its ``stdlist`` format beside the results for it.
"""

from __future__ import annotations

import numpy as np

#: QUESST 2014's weight of false alarms against misses
QUESST_BETA = 12.49


def maximum_twv(scores: np.ndarray, truth: np.ndarray, beta: float = QUESST_BETA) -> tuple[float, float]:
    """(MTWV, its threshold) for a queries × documents score matrix and its boolean ground truth."""
    true_counts = truth.sum(axis=1)
    keep = true_counts > 0
    if not keep.any():
        raise ValueError("no query has a true document")
    scores, truth, true_counts = scores[keep], truth[keep], true_counts[keep]
    n_queries, n_docs = scores.shape
    hit = 1.0 / (n_queries * true_counts)
    false_alarm = -beta / (n_queries * np.maximum(n_docs - true_counts, 1))
    gains = np.where(truth, hit[:, None], false_alarm[:, None]).ravel()
    flat = scores.ravel()
    order = np.argsort(-flat, kind="stable")
    flat, running = flat[order], np.cumsum(gains[order])
    ends = np.r_[np.flatnonzero(np.diff(flat)), len(flat) - 1]  # detections happen a tie at a time
    best = int(np.argmax(running[ends]))
    if running[ends][best] <= 0:
        return 0.0, float(flat[0])
    k = ends[best]
    below = flat[k + 1] if k + 1 < len(flat) else flat[k] - 1.0
    return float(running[k]), float((flat[k] + below) / 2)


def query_gains(scores: np.ndarray, truth: np.ndarray, beta: float = QUESST_BETA,
                max_thresholds: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Each query's term-weighted gain at candidate thresholds: ``(kept queries, gains [kept × K])``.

    A query's gain at threshold c (documents scoring at or above c detected) is
    ``hits / true documents - β · false alarms / (documents - true documents)``, so TWV(c) is the mean
    gain over the queries with a true document, and ``max(0, max_k mean_q gains[q, k])`` is the MTWV of
    any multiset of those queries (weights instead of the mean: a bootstrap over queries). The
    candidates are the distinct scores of true documents, where every maximum lies; beyond
    ``max_thresholds`` of them, an even spread in rank order plus the one of the full set's maximum
    (which keeps the MTWV itself exact; a reweighted set may then peak between candidates).
    """
    true_counts = truth.sum(axis=1)
    kept = np.flatnonzero(true_counts > 0)
    if kept.size == 0:
        raise ValueError("no query has a true document")
    candidates = np.unique(scores[truth])[::-1]  # descending
    if candidates.size > max_thresholds:
        mean = np.mean([_gains(scores[q], truth[q], candidates, beta) for q in kept], axis=0)
        spread = np.linspace(0, candidates.size - 1, max_thresholds - 1).round().astype(int)
        candidates = candidates[np.union1d(spread, [int(np.argmax(mean))])]
    return kept, np.stack([_gains(scores[q], truth[q], candidates, beta) for q in kept])


def _gains(scores: np.ndarray, truth: np.ndarray, thresholds: np.ndarray, beta: float) -> np.ndarray:
    """One query's gain at each threshold (documents scoring at or above it detected)."""
    true_scores, false_scores = np.sort(scores[truth]), np.sort(scores[~truth])
    hits = true_scores.size - np.searchsorted(true_scores, thresholds, side="left")
    false_alarms = false_scores.size - np.searchsorted(false_scores, thresholds, side="left")
    return hits / true_scores.size - beta * false_alarms / max(false_scores.size, 1)
