"""The SUPERB score of resampled metrics: one scorer per seed (its reference table), combined into a
:data:`harness.report.stats.Combine` that scores every bootstrap or permutation replicate."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from harness.core.errors import HarnessError
from harness.evaluation import scoring
from harness.report import stats

Scorer = Callable[[dict[str, float]], float]


def make_scorer(reference: str, fbank: dict[str, float] | None, directions: dict[str, str]) -> Scorer | None:
    """The SUPERB score of a ``task.metric`` dict against ``reference`` (FBank measured values for
    ``measured``), through :mod:`harness.evaluation.scoring`; None when that table is unavailable."""
    try:
        table = scoring.reference_table(reference, fbank, directions)
    except HarnessError:
        return None
    return lambda metrics: float(scoring.superb_score(metrics, table, strict=False).score)


def _affine(scorer: Scorer, at: dict[str, float]) -> tuple[float, np.ndarray] | None:
    """(score at ``at``, d score / d metric) if ``scorer`` is affine around ``at``, else None.

    The SUPERB score is a mean of linear rescalings of the metrics, so its coefficients come from one
    call per metric; they are checked at two random points before use.
    """
    names = list(at)
    base = scorer(at)
    coef = np.array([scorer({**at, n: at[n] + 1.0}) - base for n in names])
    x0 = np.array([at[n] for n in names])
    rng = np.random.default_rng(0)
    for _ in range(2):
        x = x0 + rng.uniform(-10, 10, len(names))
        actual = scorer(dict(zip(names, map(float, x), strict=True)))
        if not math.isclose(base + float(coef @ (x - x0)), actual, rel_tol=1e-9, abs_tol=1e-6):
            return None
    return base, coef


def _safe(scorer: Scorer, metrics: dict[str, float]) -> float:
    try:
        return scorer(metrics)
    except HarnessError:  # a replicate where a metric is undefined (no denominator drawn)
        return float("nan")


def superb_combine(scorers: dict[int, Scorer]) -> stats.Combine:
    """A :data:`harness.report.stats.Combine`: the SUPERB score of each replicate with its seed's scorer.

    Evaluated as a matrix product when the scorer is affine (see :func:`_affine`), else once per
    replicate.
    """
    linear: dict[tuple, tuple[dict[str, float], float, np.ndarray] | None] = {}

    def score(seed: int, values: dict[str, np.ndarray]) -> np.ndarray:
        names = list(values)
        cache = (seed, *names)
        if cache not in linear:
            at = {n: float(v[0]) for n, v in values.items()}
            fit = _affine(scorers[seed], at) if all(math.isfinite(x) for x in at.values()) else None
            linear[cache] = (at, *fit) if fit is not None else None
        fit = linear[cache]
        if fit is not None:
            at, base, coef = fit
            x = np.stack([values[n] for n in names], axis=1) - np.array([at[n] for n in names])
            return base + x @ coef
        return np.array([_safe(scorers[seed], {n: float(v[j]) for n, v in values.items()})
                         for j in range(len(values[names[0]]))])

    def combine(values: dict[str, np.ndarray], seeds: tuple[int, ...]) -> np.ndarray:
        out = np.empty_like(next(iter(values.values())))
        for k, seed in enumerate(seeds):
            out[:, k] = score(seed, {n: v[:, k] for n, v in values.items()})
        return out

    return combine
