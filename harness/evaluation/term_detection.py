"""Query-by-example spoken term detection (SUPERB QbE): DTW matching scores and the maximum
term-weighted value.

Matching follows s3prl's ``downstream/quesst14_dtw`` defaults: features standardised per dimension
over every query and document frame of the layer; the distance between a query frame and a document
frame is ``exp(cosine distance) - 1``, min-max normalised along each query frame's row; subsequence
DTW with the asymmetric step pattern (each query frame advances by one; the document by 0, 1 or 2;
the alignment may start and end anywhere in the document), its cost divided by the query's length;
the score is minus that cost, standardised over the documents of each query. Queries under five
frames score 0 everywhere.

Term-weighted value at threshold θ, over the queries with at least one true document q:
``TWV(θ) = 1 - mean_q [P_miss(q, θ) + β · P_fa(q, θ)]``, where a document counts as detected when its
score exceeds θ, ``P_miss = 1 - hits / true documents`` and ``P_fa = false alarms / (documents - true
documents)``; MTWV is its maximum over θ (θ above every score gives 0). β = 12.49 is QUESST 2014's
(P_target 0.0008, C_miss 100, C_fa 1). This is the definition; the official scorer
(``score-TWV-Cnxe.sh``) is the reference for numbers to publish, and ``harness`` writes the detections
in its ``stdlist`` format beside the results for it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: QUESST 2014's weight of false alarms against misses
QUESST_BETA = 12.49
#: queries shorter than this many frames are not matched (s3prl's rule)
MIN_QUERY_FRAMES = 5


def standardise(layers: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Each T×D array standardised with the mean and standard deviation of all their frames together."""
    stacked = np.concatenate(layers)
    mean, std = stacked.mean(axis=0), np.clip(stacked.std(axis=0, ddof=1), 1e-9, None)
    return [(x - mean) / std for x in layers]


def distances(query: np.ndarray, doc: np.ndarray) -> np.ndarray:
    """Nq×Nd ``exp(cosine distance) - 1``, each row min-max normalised to [0, 1]."""
    q = query / np.clip(np.linalg.norm(query, axis=1, keepdims=True), 1e-12, None)
    d = doc / np.clip(np.linalg.norm(doc, axis=1, keepdims=True), 1e-12, None)
    dist = np.exp(1.0 - q @ d.T) - 1.0
    low, high = dist.min(axis=1, keepdims=True), dist.max(axis=1, keepdims=True)
    return (dist - low) / np.clip(high - low, 1e-9, None)


def subsequence_cost(dist: np.ndarray) -> float:
    """The cheapest asymmetric DTW path of every query row through any stretch of the document columns,
    divided by the number of query rows."""
    cost = dist[0].copy()
    inf = np.full(2, np.inf)
    for row in dist[1:]:
        padded = np.concatenate([inf, cost])  # padded[j + 2] = cost[j]
        cost = row + np.minimum(np.minimum(padded[2:], padded[1:-1]), padded[:-2])
    return float(cost.min() / len(dist))


def query_scores(query: np.ndarray, docs: Sequence[np.ndarray]) -> np.ndarray:
    """One query's standardised scores over the documents (0 for a query too short to match)."""
    if len(query) < MIN_QUERY_FRAMES:
        return np.zeros(len(docs))
    raw = np.array([-subsequence_cost(distances(query, doc)) for doc in docs])
    return (raw - raw.mean()) / max(float(raw.std()), 1e-9)


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
