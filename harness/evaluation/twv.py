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
