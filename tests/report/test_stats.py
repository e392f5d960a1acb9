"""harness.report.stats against scipy and hand-computed cases."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats as sps

from harness.report import stats


def _stats(num, den, seeds=(0,), ids=None) -> stats.ItemStats:
    num = np.atleast_2d(np.asarray(num, dtype=float))
    den = np.atleast_2d(np.asarray(den, dtype=float))
    ids = ids or tuple(f"i{k}" for k in range(num.shape[1]))
    return stats.ItemStats(tuple(ids), num, den, tuple(seeds))


def test_item_stats_from_items_aligns_ids_across_seeds_and_computes_ratios():
    runs = {
        3: [{"id": "a", "stats": {"per": [1, 10]}}, {"id": "b", "stats": {"per": [3, 10]}},
            {"id": "c", "stats": {"per": [0, 5]}}],
        7: [{"id": "b", "stats": {"per": [2, 10]}}, {"id": "a", "stats": {"per": [0, 10]}}],
    }
    st = stats.ItemStats.from_items(runs, "per")
    assert st.ids == ("a", "b") and st.seeds == (3, 7)
    np.testing.assert_array_equal(st.num, [[1, 3], [0, 2]])
    np.testing.assert_allclose(st.per_seed(), [20.0, 10.0])
    assert st.value == pytest.approx(15.0)
    np.testing.assert_allclose(st.per_item(), [5.0, 25.0])  # pooled over seeds: 1/20, 5/20


def test_bootstrap_interval_matches_scipy_percentile_bootstrap():
    rng = np.random.default_rng(1)
    num = rng.integers(0, 8, 150).astype(float)
    den = rng.integers(5, 15, 150).astype(float)
    ours = stats.bootstrap_ci(_stats(num, den), n_resamples=20000, seed=0)
    ref = sps.bootstrap((num, den), lambda n, d, axis: 100 * n.sum(axis) / d.sum(axis), paired=True,
                        vectorized=True, method="percentile", n_resamples=20000, rng=5).confidence_interval
    width = ref.high - ref.low
    assert abs(ours.low - ref.low) < 0.03 * width
    assert abs(ours.high - ref.high) < 0.03 * width


def test_bootstrap_over_seeds_alone_gives_the_exact_seed_distribution():
    # items have no spread within a seed; seeds 10 % and 20 %: replicate means 10, 15, 20 with
    # probabilities 1/4, 1/2, 1/4, so the 2.5 % and 97.5 % percentiles are 10 and 20
    num = np.array([[1.0] * 20, [2.0] * 20])
    st = _stats(num, np.full((2, 20), 10.0), seeds=(0, 1))
    ci = stats.bootstrap_ci(st, n_resamples=4000)
    assert (ci.low, ci.high) == (pytest.approx(10.0), pytest.approx(20.0))
    reps = stats.bootstrap_replicates([st], n_resamples=4000)[0]
    assert set(np.round(reps, 9)) == {10.0, 15.0, 20.0}
    assert np.mean(reps == 15.0) == pytest.approx(0.5, abs=0.03)


def test_bootstrap_is_deterministic_for_a_seed():
    st = _stats(np.arange(30) % 4, np.full(30, 3.0))
    a = stats.bootstrap_replicates([st], n_resamples=300, seed=4)
    b = stats.bootstrap_replicates([st], n_resamples=300, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, stats.bootstrap_replicates([st], n_resamples=300, seed=5))


def test_joint_bootstrap_of_a_combination_shifts_with_a_constant_metric():
    rng = np.random.default_rng(2)
    a = _stats(rng.integers(0, 2, 120), np.ones(120))
    constant = _stats(np.full(50, 3.0), np.full(50, 10.0))  # always 30 %
    alone = stats.bootstrap_ci(a, n_resamples=20000)
    joint = stats.bootstrap_ci({"a": a, "c": constant}, lambda v, seeds: v["a"] + v["c"], n_resamples=20000)
    assert joint.low == pytest.approx(alone.low + 30, abs=1.0)
    assert joint.high == pytest.approx(alone.high + 30, abs=1.0)
    with pytest.raises(ValueError, match="combine"):
        stats.bootstrap_ci({"a": a, "c": constant})


def test_permutation_test_exact_equals_scipy_for_accuracy():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 2, 10).astype(float)
    y = rng.integers(0, 2, 10).astype(float)
    ours = stats.permutation_test(_stats(x, np.ones(10)), _stats(y, np.ones(10)), n_resamples=5000)
    ref = sps.permutation_test((x, y), lambda a, b, axis: 100 * (a.mean(axis) - b.mean(axis)),
                               permutation_type="samples", vectorized=True, n_resamples=5000)
    assert ours.exact and ours.n_resamples == 1024
    assert ours.statistic == pytest.approx(ref.statistic)
    assert ours.pvalue == pytest.approx(ref.pvalue, abs=1e-12)


def test_permutation_test_exact_equals_scipy_for_error_rates_with_shared_lengths():
    rng = np.random.default_rng(4)
    lengths = rng.integers(5, 20, 9).astype(float)
    x = rng.binomial(lengths.astype(int), 0.2).astype(float)
    y = rng.binomial(lengths.astype(int), 0.4).astype(float)
    total = lengths.sum()
    ours = stats.permutation_test(_stats(x, lengths), _stats(y, lengths), n_resamples=1000)
    ref = sps.permutation_test((x, y), lambda a, b, axis: 100 * (a.sum(axis) - b.sum(axis)) / total,
                               permutation_type="samples", vectorized=True, n_resamples=1000)
    assert ours.pvalue == pytest.approx(ref.pvalue, abs=1e-12)
    assert ours.pvalue < 0.05


def test_permutation_test_swaps_numerators_and_denominators_over_all_seeds_together():
    rng = np.random.default_rng(5)
    n = 5
    an, ad = rng.integers(0, 5, (2, n)).astype(float), rng.integers(5, 9, (2, n)).astype(float)
    bn, bd = rng.integers(2, 8, (2, n)).astype(float), rng.integers(5, 9, (2, n)).astype(float)

    def value(num, den):
        return float(np.mean(100 * num.sum(axis=1) / den.sum(axis=1)))

    observed = value(an, ad) - value(bn, bd)
    null = []
    for swap in itertools.product((False, True), repeat=n):
        s = np.array(swap)
        null.append(value(np.where(s, bn, an), np.where(s, bd, ad)) - value(np.where(s, an, bn), np.where(s, ad, bd)))
    null = np.array(null)
    expected = min(1.0, 2 * min(np.mean(null <= observed + 1e-12), np.mean(null >= observed - 1e-12)))
    ours = stats.permutation_test(_stats(an, ad, (0, 1)), _stats(bn, bd, (0, 1)), n_resamples=100)
    assert ours.statistic == pytest.approx(observed)
    assert ours.pvalue == pytest.approx(expected)


def test_randomized_permutation_test_agrees_with_scipy():
    rng = np.random.default_rng(6)
    x = (rng.random(400) < 0.62).astype(float)
    y = (rng.random(400) < 0.55).astype(float)
    ours = stats.permutation_test(_stats(x, np.ones(400)), _stats(y, np.ones(400)), n_resamples=4000, seed=1)
    ref = sps.permutation_test((x, y), lambda a, b, axis: a.mean(axis) - b.mean(axis), permutation_type="samples",
                               vectorized=True, n_resamples=4000, rng=2)
    assert not ours.exact
    assert ours.pvalue == pytest.approx(ref.pvalue, abs=0.015)


def test_paired_bootstrap_of_a_mean_difference_matches_scipy_on_the_differences():
    rng = np.random.default_rng(7)
    x = (rng.random(300) < 0.7).astype(float)
    y = np.where(rng.random(300) < 0.8, x, 1 - x)
    res = stats.paired_bootstrap(_stats(x, np.ones(300)), _stats(y, np.ones(300)), n_resamples=20000)
    ref = sps.bootstrap((100 * (x - y),), np.mean, method="percentile", n_resamples=20000, rng=3)
    assert res.delta == pytest.approx(100 * (x.mean() - y.mean()))
    width = ref.confidence_interval.high - ref.confidence_interval.low
    assert abs(res.interval.low - ref.confidence_interval.low) < 0.04 * width
    assert abs(res.interval.high - ref.confidence_interval.high) < 0.04 * width
    # the p-value is where the percentile interval touches zero
    assert (res.pvalue < 0.05) == (not res.interval.contains(0.0))


def test_paired_bootstrap_without_difference_is_not_significant():
    x = np.tile([1.0, 0.0, 1.0, 1.0], 50)
    res = stats.paired_bootstrap(_stats(x, np.ones(200)), _stats(x, np.ones(200)), n_resamples=500)
    assert res.delta == 0.0 and res.pvalue == 1.0
    assert (res.interval.low, res.interval.high) == (0.0, 0.0)


def test_align_keeps_shared_items_and_seeds_in_the_first_models_order():
    a = _stats([[1, 2, 3], [4, 5, 6]], np.ones((2, 3)), seeds=(0, 1), ids=("x", "y", "z"))
    b = _stats([[7, 8]], np.ones((1, 2)), seeds=(1,), ids=("z", "x"))
    a2, b2 = stats.align(a, b)
    assert a2.ids == b2.ids == ("x", "z") and a2.seeds == b2.seeds == (1,)
    np.testing.assert_array_equal(a2.num, [[4, 6]])
    np.testing.assert_array_equal(b2.num, [[8, 7]])
    with pytest.raises(ValueError, match="share no"):
        stats.align(a, _stats([[1]], [[1]], seeds=(9,)))


def test_seed_ttest_is_scipys_paired_t_test_from_three_seeds():
    a, b = [70.1, 71.5, 69.8, 72.0], [68.0, 70.9, 69.9, 70.2]
    assert stats.seed_ttest(a, b) == pytest.approx(sps.ttest_rel(a, b).pvalue)
    assert stats.seed_ttest(a[:2], b[:2]) is None
    assert stats.seed_ttest([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 1.0
    assert stats.seed_ttest([2.0, 3.0, 4.0], [1.0, 2.0, 3.0]) == 0.0


def test_seed_interval_is_the_student_t_interval():
    values = [10.0, 12.0, 11.0, 13.5]
    ci = stats.seed_interval(values)
    low, high = sps.t.interval(0.95, 3, loc=np.mean(values), scale=sps.sem(values))
    assert (ci.low, ci.high) == (pytest.approx(low), pytest.approx(high))
    assert stats.seed_interval([1.0]) is None


def test_delta_value_std_is_the_spread_of_per_pair_scores_and_of_their_differences():
    baseline = _stats([0.1, 0.3, 0.5], np.ones(3))  # per-pair scores 10, 30, 50 %
    flat = _stats([0.2, 0.2, 0.2], np.ones(3))  # a collapsed model: every pair at 20 %
    assert stats.delta_value_std(baseline) == pytest.approx(20.0)
    assert stats.delta_value_std(flat) == pytest.approx(0.0)
    # differences +10, -10, -30: sd 20, the baseline's own spread since the other model is flat
    assert stats.paired_delta_value_std(flat, baseline) == pytest.approx(20.0)
    # errors or accuracies give the same spread
    accuracy = _stats([0.9, 0.7, 0.5], np.ones(3))
    assert stats.delta_value_std(accuracy) == pytest.approx(stats.delta_value_std(baseline))
    # several seeds: per-pair values pooled over seeds
    two = _stats([[0.0, 0.2], [0.2, 0.6]], np.ones((2, 2)), seeds=(0, 1))
    assert stats.delta_value_std(two) == pytest.approx(np.std([10.0, 40.0], ddof=1))


def test_holm_and_benjamini_hochberg_adjust_as_computed_by_hand():
    p = [0.01, 0.04, None, 0.03, 0.005]
    # Holm, m = 4: sorted 0.005, 0.01, 0.03, 0.04 -> 4·0.005, 3·0.01, 2·0.03, 1·0.04, then running maxima
    assert stats.adjust_pvalues(p, "holm") == pytest.approx([0.03, 0.06, None, 0.06, 0.02])
    # BH: p·m/rank = 0.02, 0.02, 0.04, 0.04, then running minima from the largest
    assert stats.adjust_pvalues(p, "bh") == pytest.approx([0.02, 0.04, None, 0.04, 0.02])
    assert stats.adjust_pvalues(p, "none") == p
    assert stats.adjust_pvalues([0.5, 0.9], "holm") == [1.0, 1.0]  # capped at 1, never below an earlier one
    assert stats.adjust_pvalues([0.04, 0.01], "holm") == pytest.approx([0.04, 0.02])  # in the given order
    with pytest.raises(ValueError, match="unknown adjustment"):
        stats.adjust_pvalues(p, "bonferroni")
