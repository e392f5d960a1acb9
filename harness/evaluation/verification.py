"""Speaker verification scoring: trial lists and the equal error rate (SUPERB ASV).

A trial is ``(label, enrolment id, test id)``, label 1 when both utterances have one speaker. The
equal error rate is the one speaker-verification recipes compute with scikit-learn and scipy
(``roc_curve``, then ``brentq`` on ``1 - x - interp1d(fpr, tpr)(x)``): the ROC curve over every
distinct score, then the false-positive rate x at which the miss rate 1 − TPR(x) equals x, with
TPR read off the curve by linear interpolation. Written here in numpy (one sort, and the crossing
solved on its segment) because scikit-learn is not a dependency; the tests compare it with that
computation. It has no per-item statistics: the leaderboard's interval for it is over seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from harness.core.errors import CorpusError

Trial = tuple[int, str, str]


def roc_points(labels: Sequence[int], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) at every distinct score taken as the threshold (accept at or above), from (0, 0) to (1, 1)."""
    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    y, s = y[order], s[order]
    ends = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each run of equal scores
    tps = np.cumsum(y)[ends]
    fps = (ends + 1) - tps
    return np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]]


def equal_error_rate(labels: Sequence[int], scores: Sequence[float]) -> float:
    """The EER in percent: the x where 1 − TPR(x) = x on the linearly interpolated ROC curve."""
    y = np.asarray(labels)
    if y.size == 0 or y.min() == y.max():
        raise CorpusError("speaker verification needs trials of both kinds (same speaker and different "
                          "speakers); the trial list holds only one.")
    fpr, tpr = roc_points(labels, scores)
    gap = (1.0 - fpr) - tpr  # decreasing along the curve: positive at (0, 0), negative at (1, 1)
    k = int(np.flatnonzero(gap <= 0)[0])
    if gap[k] == 0:
        return 100.0 * float(fpr[k])
    f0, f1, t0, t1 = fpr[k - 1], fpr[k], tpr[k - 1], tpr[k]
    if f1 == f0:  # a vertical step: TPR jumps across 1 - x at this x
        return 100.0 * float(f0)
    slope = (t1 - t0) / (f1 - f0)
    return 100.0 * float((1.0 - t0 + slope * f0) / (1.0 + slope))


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
    """A trial list of ``<0|1> <id> <id>`` lines (the prepared corpus's ``<split>.trials``)."""
    trials = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3 or parts[0] not in ("0", "1"):
            raise CorpusError(f"{path} line {n} is not '<0|1> <utterance id> <utterance id>'.")
        trials.append((int(parts[0]), parts[1], parts[2]))
    return trials


def write_trials(path: Path, trials: Sequence[Trial]) -> None:
    path.write_text("".join(f"{label} {a} {b}\n" for label, a, b in trials), encoding="utf-8")
