"""Confidence intervals and paired tests from per-item results.

Almost every metric the harness reports is a ratio of sums over test items (utterances, ABX phone
pairs, diarized recordings)::

    metric = 100 · Σ_i num_i / Σ_i den_i

(accuracy: [correct, 1]; PER/CER/WER: [edits, reference length]; F1: [2·TP, 2·TP+FP+FN]; ABX: [error, 1]
per phone pair). The two that are not, ASV's EER over trials and QbE's MTWV over queries, are
resampled the same way through their own item form (:mod:`harness.report.item_stats`). A model
evaluated with several training seeds on the same test items gives one value per seed; the reported
value is their mean.

Intervals are percentile bootstrap intervals. A replicate resamples the items with replacement (the
same draw for every seed, since every seed sees the same test set) and, when there are several
seeds, the seeds with replacement too; its value is the mean over the drawn seeds of each seed's
ratio over the drawn items. Several metrics (the tasks behind a SUPERB score) are resampled jointly:
one item draw per metric and one seed draw shared by all, then combined by a function.

Paired tests compare a model with a baseline on the same items and seeds:

- :func:`paired_bootstrap`: the interval of the difference (model − baseline) from shared draws, and
  the p-value at which that percentile interval would just touch zero.
- :func:`permutation_test`: under the null hypothesis the two models are exchangeable on each item,
  so each item's pair of results (all seeds together) is swapped with probability ½; two-sided
  p-value as :func:`scipy.stats.permutation_test` defines it (exact enumeration when all swaps fit in
  the resample budget). Ratio statistics only: an EER's or MTWV's scores are on each model's own
  scale, so swapping them between models tests nothing; those are compared by paired bootstrap.
- :func:`seed_ttest`: a paired t-test over seeds (:func:`scipy.stats.ttest_rel`), from 3 seeds on.

scipy.stats.bootstrap and permutation_test take one flat sample; they cannot resample items and seeds
at two levels nor several tasks jointly through a scoring function, so the resampling is written here
(vectorized with numpy) and checked against scipy in the tests on the cases scipy covers.

:func:`delta_value_std` and :func:`paired_delta_value_std` give the ABX "delta-value standard
deviation" of the non-speech fine-tuning study (see their docstrings for the exact definition).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from harness.report.item_stats import GainStats, ItemStats, Resampled, TrialStats, align, from_items, ratio

__all__ = [
    "GainStats", "ItemStats", "Resampled", "TrialStats", "align", "from_items", "bootstrap_replicates", "observed",
    "percentile_interval", "bootstrap_ci", "paired_bootstrap", "paired_from_replicates", "permutation_test",
    "permutation_tests", "seed_ttest", "seed_interval", "delta_value_std", "paired_delta_value_std",
    "ADJUSTMENTS", "adjust_pvalues",
]

#: combine(per-metric values, each an array [replicates × seeds], the seeds of those columns)
#: -> array [replicates × seeds]
Combine = Callable[[dict[str, np.ndarray], tuple[int, ...]], np.ndarray]

#: elements per vectorized chunk of replicates (memory bound, about 16 MB of float64)
_CHUNK_ELEMENTS = 2_000_000


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    level: float = 0.95

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high


@dataclass(frozen=True)
class PairedResult:
    """Model − baseline: the observed difference, its bootstrap interval and a two-sided p-value."""

    delta: float
    interval: Interval
    pvalue: float


@dataclass(frozen=True)
class PermutationResult:
    statistic: float
    pvalue: float
    n_resamples: int
    exact: bool


Group = Mapping[str, Resampled]


def _as_group(x: Resampled | Group) -> dict[str, Resampled]:
    return {"value": x} if isinstance(x, Resampled) else dict(x)


def _check_groups(groups: Sequence[dict[str, Resampled]], combine: Combine | None) -> tuple[list[str], tuple]:
    names = list(groups[0])
    if combine is None and len(names) != 1:
        raise ValueError("several metrics need a combine function")
    seeds = groups[0][names[0]].seeds
    for g in groups:
        if list(g) != names:
            raise ValueError("every group must hold the same metrics")
        for name in names:
            if g[name].seeds != seeds or g[name].ids != groups[0][name].ids:
                raise ValueError(f"metric {name!r}: groups must share items and seeds (use align)")
    return names, seeds


def _combined(group: dict[str, Resampled], combine: Combine | None, values: dict[str, np.ndarray]) -> np.ndarray:
    """[replicates × seeds] values of a group from each metric's ``values`` [replicates × seeds]."""
    if combine is None:
        return next(iter(values.values()))
    return np.asarray(combine(values, next(iter(group.values())).seeds), dtype=float)


def _ratio_values(gs: list[dict[str, Resampled]], counts: np.ndarray, block: np.ndarray) -> list[np.ndarray]:
    """Every group's ratio values from one product of the draw counts with the groups' stacked
    ``[num, den]`` columns (much faster than one product per group)."""
    sums = counts @ block
    width = sums.shape[1] // len(gs)  # 2·seeds: the group's num columns, then its den columns
    return [ratio(sums[:, k * width:k * width + width // 2], sums[:, k * width + width // 2:(k + 1) * width])
            for k in range(len(gs))]


def _blocks(gs: list[dict[str, Resampled]], names: list[str]) -> dict[str, np.ndarray]:
    """Per ratio metric, one contiguous [items × (groups·2·seeds)] matrix of every group's num and den."""
    return {name: np.ascontiguousarray(np.concatenate([np.concatenate([g[name].num, g[name].den]) for g in gs]).T)
            for name in names if all(isinstance(g[name], ItemStats) for g in gs)}


def _counts(idx: np.ndarray, n: int) -> np.ndarray:
    """How often each item is drawn in each replicate: [b × n] indices -> [b × n] float counts."""
    flat = (idx + n * np.arange(idx.shape[0])[:, None]).ravel()
    return np.bincount(flat, minlength=idx.size).reshape(idx.shape).astype(float)


def _clusters(gs: list[dict[str, Resampled]], name: str) -> np.ndarray | None:
    """The metric's cluster of each item, which every group must share (None: items are drawn alone)."""
    codes = gs[0][name].cluster_codes()
    for g in gs[1:]:
        other = g[name].cluster_codes()
        if (codes is None) != (other is None) or (codes is not None and not np.array_equal(codes, other)):
            raise ValueError(f"metric {name!r}: groups must cluster their items alike")
    return codes


def _cluster_counts(rng: np.random.Generator, b: int, codes: np.ndarray) -> np.ndarray:
    """Draw counts ``[b × clusters]``: as many clusters as there are, with replacement (a drawn cluster
    brings all its items: item i counts ``counts[:, codes[i]]`` times)."""
    k = int(codes.max()) + 1
    return _counts(rng.integers(0, k, size=(b, k)), k)


def bootstrap_replicates(groups: Sequence[Resampled | Group], combine: Combine | None = None,
                         n_resamples: int = 2000, seed: int = 0) -> np.ndarray:
    """Bootstrap replicates ``[groups × n_resamples]`` of each group's (seed-mean) value.

    Each group is one model: a metric's :class:`Resampled` results or a mapping of metric name ->
    results combined per seed by ``combine(values, seeds)``. All groups share every draw (items, or
    clusters of items, per metric; seeds), which makes the replicates of two groups paired.
    """
    gs = [_as_group(g) for g in groups]
    names, seeds = _check_groups(gs, combine)
    n_seeds = len(seeds)
    sizes = {name: gs[0][name].n_items for name in names}
    if min(sizes.values()) == 0:
        raise ValueError("no items to resample")
    blocks = _blocks(gs, names)
    clusters = {name: _clusters(gs, name) for name in names}
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_resamples, _CHUNK_ELEMENTS // max(sizes.values())))
    out = np.empty((len(gs), n_resamples))
    for start in range(0, n_resamples, chunk):
        b = min(chunk, n_resamples - start)
        if n_seeds > 1:
            weights = rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=b).astype(float)
        else:
            weights = np.ones((b, 1))
        per_metric = {}
        for name, n in sizes.items():  # one draw per metric, in order (the same stream whatever the metrics)
            codes = clusters[name]
            if codes is not None and name not in blocks:  # whole clusters, counted per cluster
                drawn = _cluster_counts(rng, b, codes)
                per_metric[name] = [g[name].resampled_by_cluster(drawn) for g in gs]
                continue
            counts = _counts(rng.integers(0, n, size=(b, n)), n) if codes is None \
                else _cluster_counts(rng, b, codes)[:, codes]
            per_metric[name] = (_ratio_values(gs, counts, blocks[name]) if name in blocks
                                else [g[name].resampled(counts) for g in gs])
        for k, g in enumerate(gs):
            values = _combined(g, combine, {name: per_metric[name][k] for name in names})
            out[k, start:start + b] = (weights * values).sum(axis=1) / n_seeds
    return out


def observed(group: Resampled | Group, combine: Combine | None = None) -> float:
    """The seed-mean value of a group computed from its items (what the replicates scatter around)."""
    g = _as_group(group)
    return float(np.mean(_combined(g, combine, {n: st.per_seed()[None, :] for n, st in g.items()})))


def percentile_interval(replicates: np.ndarray, level: float = 0.95) -> Interval:
    alpha = 1.0 - level
    reps = np.asarray(replicates, dtype=float)
    reps = reps[np.isfinite(reps)]
    if reps.size == 0:
        return Interval(float("nan"), float("nan"), level)
    low, high = np.percentile(reps, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return Interval(float(low), float(high), level)


def bootstrap_ci(stats: ItemStats | Group, combine: Combine | None = None, level: float = 0.95,
                 n_resamples: int = 2000, seed: int = 0) -> Interval:
    """Percentile bootstrap interval of a model's value, over items (and seeds when several)."""
    return percentile_interval(bootstrap_replicates([stats], combine, n_resamples, seed)[0], level)


def paired_bootstrap(model: ItemStats | Group, baseline: ItemStats | Group, combine: Combine | None = None,
                     level: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> PairedResult:
    """Interval of model − baseline from shared draws, and the two-sided bootstrap p-value
    (see :func:`paired_from_replicates`)."""
    reps = bootstrap_replicates([model, baseline], combine, n_resamples, seed)
    delta = observed(model, combine) - observed(baseline, combine)
    return paired_from_replicates(reps[0], reps[1], delta, level)


def paired_from_replicates(model: np.ndarray, baseline: np.ndarray, delta: float,
                           level: float = 0.95) -> PairedResult:
    """The paired result from replicates drawn jointly (same items and seeds in each replicate).

    The p-value is ``2 · min(P*(Δ ≤ 0), P*(Δ ≥ 0))`` over the replicates (each count + 1, over
    replicates + 1): the smallest level at which the percentile interval of Δ excludes zero.
    """
    diff = np.asarray(model) - np.asarray(baseline)
    diff = diff[np.isfinite(diff)]
    n = diff.size
    p = 2 * min((np.count_nonzero(diff <= 0) + 1) / (n + 1), (np.count_nonzero(diff >= 0) + 1) / (n + 1))
    return PairedResult(float(delta), percentile_interval(diff, level), float(min(1.0, p)))


def permutation_test(model: ItemStats | Group, baseline: ItemStats | Group, combine: Combine | None = None,
                     n_resamples: int = 5000, seed: int = 0) -> PermutationResult:
    """Paired permutation test over items of H0: model and baseline are exchangeable on every item.

    The statistic is value(model) − value(baseline) (seed means; through ``combine`` for several
    metrics). A permutation swaps the two models' ``[num, den]`` on a random subset of items, the
    same subset for every seed; each metric's items are swapped independently. When ``2**items`` is
    at most ``n_resamples`` every subset is enumerated (exact test). The two-sided p-value is
    ``min(1, 2 · min(P(T* ≤ T), P(T* ≥ T)))`` with scipy's conventions: randomized counts include the
    observed arrangement (+1 over resamples + 1), and ties within a relative 100·eps count as equal.
    """
    return permutation_tests([(model, baseline)], combine, n_resamples, seed)[0]


def permutation_tests(pairs: Sequence[tuple[ItemStats | Group, ItemStats | Group]], combine: Combine | None = None,
                      n_resamples: int = 5000, seed: int = 0) -> list[PermutationResult]:
    """:func:`permutation_test` of several (model, baseline) pairs with the same random swaps.

    Every pair needs the same metrics with the same number of items (each pair aligned on its own);
    drawing the swaps once makes many comparisons on one test set cheap. Each p-value is the one
    :func:`permutation_test` gives for that pair alone.
    """
    prepared = []
    for model, baseline in pairs:
        ga, gb = _as_group(model), _as_group(baseline)
        names, _ = _check_groups([ga, gb], combine)
        if not all(g[n].permutable for g in (ga, gb) for n in names):
            raise ValueError("the permutation test swaps ratio statistics between models; compare an EER or "
                             "MTWV by paired bootstrap")
        prepared.append((ga, gb, names))
    names = prepared[0][2]
    sizes = [prepared[0][0][n].n_items for n in names]
    if any(p[2] != names or [p[0][n].n_items for n in names] != sizes for p in prepared):
        raise ValueError("pairs tested together need the same metrics and numbers of items")
    total = sum(sizes)
    exact = total < 63 and 2**total <= n_resamples
    # per metric, [items × (pairs·2·seeds)]: what swapping an item changes in each pair's model num
    # (seed columns) and den; contiguous so that a batch of swaps is one matrix product
    widths = [2 * len(ga[names[0]].seeds) for ga, _, _ in prepared]
    offsets = np.concatenate([[0], np.cumsum(widths)])
    delta = {n: np.ascontiguousarray(np.concatenate(
        [np.concatenate([gb[n].num - ga[n].num, gb[n].den - ga[n].den]) for ga, gb, _ in prepared]).T)
        for n in names}

    def statistics(masks: list[np.ndarray]) -> list[np.ndarray]:
        change = {n: m @ delta[n] for n, m in zip(names, masks, strict=True)}  # [r × pairs·2·seeds]
        out = []
        for k, (ga, gb, _) in enumerate(prepared):
            lo, width = offsets[k], widths[k] // 2
            sn = {n: c[:, lo:lo + width] for n, c in change.items()}
            sd = {n: c[:, lo + width:lo + 2 * width] for n, c in change.items()}
            va = _combined(ga, combine, {n: ratio(ga[n].num.sum(axis=1) + sn[n], ga[n].den.sum(axis=1) + sd[n])
                                         for n in names})
            vb = _combined(gb, combine, {n: ratio(gb[n].num.sum(axis=1) - sn[n], gb[n].den.sum(axis=1) - sd[n])
                                         for n in names})
            out.append(va.mean(axis=1) - vb.mean(axis=1))
        return out

    observed_t = [float(t[0]) for t in statistics([np.zeros((1, n)) for n in sizes])]
    parts: list[list[np.ndarray]] = []
    if exact:
        all_masks = np.array(list(itertools.product((0.0, 1.0), repeat=total))).reshape(-1, total)
        parts.append(statistics(np.split(all_masks, np.cumsum(sizes)[:-1], axis=1)))
        count = all_masks.shape[0]
    else:
        rng = np.random.default_rng(seed)
        chunk = max(1, min(n_resamples, _CHUNK_ELEMENTS // max(sizes)))
        for start in range(0, n_resamples, chunk):
            r = min(chunk, n_resamples - start)
            parts.append(statistics([(rng.random((r, n)) < 0.5).astype(float) for n in sizes]))
        count = n_resamples
    adjust = 0 if exact else 1
    results = []
    for k, t_obs in enumerate(observed_t):
        null = np.concatenate([part[k] for part in parts])
        gamma = abs(np.finfo(float).eps * 100 * t_obs)
        p_less = (np.count_nonzero(null <= t_obs + gamma) + adjust) / (count + adjust)
        p_greater = (np.count_nonzero(null >= t_obs - gamma) + adjust) / (count + adjust)
        results.append(PermutationResult(t_obs, float(np.clip(2 * min(p_less, p_greater), 0.0, 1.0)), count, exact))
    return results


def seed_ttest(model: Sequence[float], baseline: Sequence[float]) -> float | None:
    """Two-sided paired t-test over seeds (values paired by position); None below 3 pairs.

    Identical differences on every seed (zero variance) give p = 0 when they are non-zero and
    p = 1 when they are all zero, where the t statistic is undefined.
    """
    a, b = np.asarray(model, dtype=float), np.asarray(baseline, dtype=float)
    if a.size != b.size:
        raise ValueError("seed values must be paired")
    if a.size < 3:
        return None
    from scipy import stats as sps  # scipy.stats takes a second to import: only where needed

    diff = a - b
    if np.allclose(diff, diff[0], rtol=0, atol=1e-12 * max(1.0, float(np.abs(a).max()))):
        return 1.0 if abs(diff[0]) <= 1e-12 * max(1.0, float(np.abs(a).max())) else 0.0
    return float(sps.ttest_rel(a, b).pvalue)


#: corrections for testing many comparisons at once
ADJUSTMENTS = ("none", "holm", "bh")


def adjust_pvalues(pvalues: Sequence[float | None], method: str) -> list[float | None]:
    """p-values adjusted for testing them all (None entries are no test and stay None).

    ``holm``: Holm's step-down Bonferroni (controls the family-wise error rate): the i-th smallest of m
    becomes ``max_{j ≤ i} min(1, (m − j + 1) · p_(j))``. ``bh``: Benjamini–Hochberg (controls the false
    discovery rate), :func:`scipy.stats.false_discovery_control`. ``none``: unchanged.
    """
    if method not in ADJUSTMENTS:
        raise ValueError(f"unknown adjustment {method!r}; use one of {', '.join(ADJUSTMENTS)}")
    present = [k for k, p in enumerate(pvalues) if p is not None]
    out: list[float | None] = list(pvalues)
    if method == "none" or not present:
        return out
    values = np.array([pvalues[k] for k in present], dtype=float)
    if method == "bh":
        from scipy import stats as sps

        adjusted = sps.false_discovery_control(values, method="bh")
    else:
        order = np.argsort(values, kind="stable")
        m = values.size
        stepped = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * values[order]))
        adjusted = np.empty(m)
        adjusted[order] = stepped
    for k, p in zip(present, adjusted, strict=True):
        out[k] = float(p)
    return out


def seed_interval(values: Sequence[float], level: float = 0.95) -> Interval | None:
    """Student-t interval of the mean over seeds (for values without per-item results); None below 2."""
    from scipy import stats as sps

    v = np.asarray(values, dtype=float)
    if v.size < 2:
        return None
    half = sps.t.ppf(0.5 + level / 2, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size)
    return Interval(float(v.mean() - half), float(v.mean() + half), level)


def delta_value_std(stats: ItemStats) -> float:
    """The ABX "delta-value standard deviation" of one model: the spread of its per-pair scores.

    The non-speech fine-tuning study reports one such value per model (baseline 31.67, fine-tuned
    0.80) and reads a collapse as a compressed discriminative range: the model discriminates every
    phone pair about equally (badly) instead of some well and some poorly. With the per-item results
    ABX stores (one item per phone pair, stats ``[error, 1]`` or ``[errors, triplets]``), the delta
    value of pair p is its ABX score in percent, δ(p) = 100 · num_p / den_p (stats pooled over seeds
    when there are several), and this function returns the sample standard deviation (ddof = 1) of
    δ over pairs, in percentage points. It is the same whether δ is the error or the accuracy
    (100 − error). NaN for fewer than 2 pairs. The study does not define the quantity: this reading
    is the harness's (a spread of per-triplet distance margins would be another).
    """
    values = stats.per_item()
    values = values[np.isfinite(values)]
    return float(np.std(values, ddof=1)) if values.size >= 2 else float("nan")


def paired_delta_value_std(model: ItemStats, baseline: ItemStats) -> float:
    """Spread of the per-pair differences between two models: std over shared phone pairs of
    δ_model(p) − δ_baseline(p) (ddof = 1, percentage points, δ as in :func:`delta_value_std`).

    This is the spread a paired test over pairs works against: when one model's δ is nearly constant
    (the study's fine-tuned model, 0.80) it is close to the other model's own spread.
    """
    a, b = align(model, baseline)
    diff = a.per_item() - b.per_item()
    diff = diff[np.isfinite(diff)]
    return float(np.std(diff, ddof=1)) if diff.size >= 2 else float("nan")
