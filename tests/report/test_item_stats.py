"""The EER and MTWV kinds of per-item results: resampled values against the metric on the expanded
item list, intervals against scipy's bootstrap, and the paired tests they allow."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from harness.evaluation.twv import maximum_twv, query_gains
from harness.evaluation.verification import equal_error_rate
from harness.report import stats
from harness.report.item_stats import GainStats, ItemStats, TrialStats, from_items


def _trials(n: int, rng: np.random.Generator, separation: float = 1.0, seeds: int = 1) -> TrialStats:
    targets = (rng.random(n) < 0.3).astype(int)
    targets[:2] = [0, 1]
    scores = rng.normal(size=(seeds, n)).round(1) + separation * targets  # rounded: ties between trials
    return TrialStats(tuple(f"t{i}" for i in range(n)), targets, scores, tuple(range(seeds)))


def _queries(rng: np.random.Generator, n_queries: int = 12, n_docs: int = 40) -> tuple[np.ndarray, np.ndarray]:
    truth = rng.random((n_queries, n_docs)) < 0.1
    truth[0, 0] = True
    scores = rng.normal(size=truth.shape).round(1) + 2.5 * truth
    return scores, truth


def test_resampled_eer_is_the_eer_of_the_trial_list_with_each_trial_repeated_as_drawn():
    rng = np.random.default_rng(0)
    trials = _trials(60, rng, seeds=2)
    counts = rng.integers(0, 3, size=(25, 60)).astype(float)
    counts[:, :2] = 1  # every replicate keeps a trial of each kind
    values = trials.resampled(counts)
    for r in range(25):
        keep = np.repeat(np.arange(60), counts[r].astype(int))
        for s in range(2):
            assert values[r, s] == pytest.approx(equal_error_rate(trials.targets[keep], trials.scores[s, keep]),
                                                 abs=1e-9)
    np.testing.assert_allclose(trials.per_seed(), [equal_error_rate(trials.targets, row) for row in trials.scores])


def test_a_replicate_without_trials_of_one_kind_has_no_eer():
    trials = TrialStats(("a", "b", "c"), np.array([1, 0, 0]), np.array([[0.9, 0.2, 0.1]]))
    values = trials.resampled(np.array([[0.0, 2.0, 1.0], [1.0, 1.0, 1.0]]))
    assert np.isnan(values[0, 0]) and values[1, 0] == 0.0


def test_eer_interval_matches_scipy_percentile_bootstrap_over_trials():
    rng = np.random.default_rng(1)
    trials = _trials(300, rng)
    ours = stats.bootstrap_ci(trials, n_resamples=4000, seed=0)
    ref = sps.bootstrap((trials.targets, trials.scores[0]), lambda y, s: equal_error_rate(y, s), paired=True,
                        vectorized=False, n_resamples=4000, method="percentile", random_state=0).confidence_interval
    assert ours.low == pytest.approx(ref.low, abs=0.5) and ours.high == pytest.approx(ref.high, abs=0.5)
    assert ours.contains(trials.value)


def test_resampled_mtwv_is_the_mtwv_of_the_queries_repeated_as_drawn():
    rng = np.random.default_rng(2)
    scores, truth = _queries(rng)
    kept, gains = query_gains(scores, truth, beta=3.0)
    metric = GainStats(tuple(f"q{q}" for q in kept), (gains,))
    assert metric.value == pytest.approx(maximum_twv(scores, truth, 3.0)[0], abs=1e-12)
    counts = rng.integers(0, 3, size=(30, kept.size)).astype(float)
    counts[:, 0] = 1
    values = metric.resampled(counts)[:, 0]
    for r in range(30):
        rows = np.repeat(kept, counts[r].astype(int))
        assert values[r] == pytest.approx(maximum_twv(scores[rows], truth[rows], 3.0)[0], abs=1e-12)


def test_thresholds_beyond_the_cap_keep_the_mtwv_itself_exact():
    rng = np.random.default_rng(3)
    scores, truth = _queries(rng, n_queries=30, n_docs=60)
    kept, full = query_gains(scores, truth, beta=2.0)
    _, capped = query_gains(scores, truth, beta=2.0, max_thresholds=8)
    assert capped.shape == (kept.size, 8) and full.shape[1] > 8
    assert max(0.0, capped.mean(axis=0).max()) == pytest.approx(maximum_twv(scores, truth, 2.0)[0], abs=1e-12)
    counts = rng.integers(0, 3, size=(20, kept.size)).astype(float)
    coarse = GainStats(tuple(map(str, kept)), (capped,)).resampled(counts)
    exact = GainStats(tuple(map(str, kept)), (full,)).resampled(counts)
    assert np.all(coarse <= exact + 1e-12)  # a reweighted set may peak between the kept candidates


def test_from_items_reads_each_kind_from_its_stored_form_and_aligns_seeds():
    runs = {0: [{"id": "x y", "stats": {"eer": {"target": 1, "score": 0.9}}},
                {"id": "x z", "stats": {"eer": {"target": 0, "score": 0.4}}}],
            5: [{"id": "x z", "stats": {"eer": {"target": 0, "score": 0.1}}},
                {"id": "x y", "stats": {"eer": {"target": 1, "score": 0.3}}}]}
    trials = from_items(runs, "eer")
    assert isinstance(trials, TrialStats) and trials.ids == ("x y", "x z") and trials.seeds == (0, 5)
    np.testing.assert_array_equal(trials.scores, [[0.9, 0.4], [0.3, 0.1]])
    runs[5][0]["stats"]["eer"]["target"] = 1
    with pytest.raises(ValueError, match="label or group the same trials differently"):
        from_items(runs, "eer")
    gains = from_items({0: [{"id": "q1", "stats": {"mtwv": {"gains": [0.5, -0.2]}}}, {"id": "q2", "stats": {}}]},
                       "mtwv")
    assert isinstance(gains, GainStats) and gains.ids == ("q1",) and gains.value == pytest.approx(0.5)
    assert isinstance(from_items({0: [{"id": "u", "stats": {"acc": [1, 1]}}]}, "acc"), ItemStats)


def test_subset_and_align_keep_trials_with_their_labels():
    rng = np.random.default_rng(4)
    a, b = _trials(20, rng, seeds=2), _trials(20, rng, seeds=2)
    b = b.subset(b.ids[5:], (1,))
    a2, b2 = stats.align(a, b)
    assert a2.ids == b2.ids == a.ids[5:] and a2.seeds == (1,)
    np.testing.assert_array_equal(a2.targets, a.targets[5:])
    np.testing.assert_array_equal(a2.scores, a.scores[1:, 5:])


def test_eers_are_compared_by_paired_bootstrap_and_refused_by_the_permutation_test():
    rng = np.random.default_rng(5)
    base = _trials(400, rng, separation=0.5)
    better = TrialStats(base.ids, base.targets, base.scores + 1.5 * base.targets)  # the same trials, better split
    paired = stats.paired_bootstrap(better, base, n_resamples=1000)
    assert paired.delta == pytest.approx(better.value - base.value) and paired.delta < 0
    assert paired.interval.high < 0 and paired.pvalue < 0.01
    same = stats.paired_bootstrap(base, base, n_resamples=500)
    assert same.delta == 0 and same.pvalue == 1.0
    with pytest.raises(ValueError, match="compare an EER or MTWV by paired bootstrap"):
        stats.permutation_test(better, base)


def test_a_ratio_and_an_eer_resample_jointly_through_a_combination():
    rng = np.random.default_rng(6)
    acc = ItemStats(tuple(f"u{i}" for i in range(50)), rng.integers(0, 2, 50)[None, :], np.ones((1, 50)))
    eer = _trials(80, rng)
    group = {"acc": acc, "eer": eer}

    def combine(values, seeds):
        return values["acc"] - values["eer"]

    assert stats.observed(group, combine) == pytest.approx(acc.value - eer.value)
    reps = stats.bootstrap_replicates([group, group], combine, n_resamples=300, seed=1)
    np.testing.assert_array_equal(reps[0], reps[1])  # shared draws
    assert np.isfinite(reps).all() and reps[0].std() > 0


def _speaker_trials(rng: np.random.Generator, n_speakers: int = 12, per_speaker: int = 30) -> TrialStats:
    """Trials grouped by enrolment speaker, some speakers much easier to verify than others (the
    dependence between trials that share a speaker)."""
    groups = np.repeat([f"spk{k:02d}" for k in range(n_speakers)], per_speaker)
    targets = (np.arange(groups.size) % 3 == 0).astype(int)
    separation = rng.uniform(0.0, 4.0, size=n_speakers)
    scores = rng.normal(size=groups.size) + np.repeat(separation, per_speaker) * targets
    return TrialStats(tuple(f"t{i}" for i in range(groups.size)), targets, scores[None, :], (0,), tuple(groups))


def test_trials_drawn_by_enrolment_speaker_match_scipys_bootstrap_over_speakers():
    rng = np.random.default_rng(7)
    trials = _speaker_trials(rng)
    ours = stats.bootstrap_ci(trials, n_resamples=3000, seed=0)
    codes = trials.cluster_codes()

    def eer_of(drawn):
        rows = np.concatenate([np.flatnonzero(codes == c) for c in drawn.astype(int)])
        return equal_error_rate(trials.targets[rows], trials.scores[0, rows])

    ref = sps.bootstrap((np.arange(12),), eer_of, vectorized=False, n_resamples=3000, method="percentile",
                        random_state=0).confidence_interval
    assert ours.low == pytest.approx(ref.low, abs=1.0) and ours.high == pytest.approx(ref.high, abs=1.0)
    alone = stats.bootstrap_ci(TrialStats(trials.ids, trials.targets, trials.scores), n_resamples=3000, seed=0)
    assert ours.high - ours.low > 1.5 * (alone.high - alone.low)  # trials drawn alone understate the spread


def test_one_trial_per_group_draws_exactly_as_trials_alone():
    rng = np.random.default_rng(8)
    plain = _trials(50, rng)
    grouped = TrialStats(plain.ids, plain.targets, plain.scores, (0,), tuple(f"g{i:03d}" for i in range(50)))
    np.testing.assert_array_equal(stats.bootstrap_replicates([grouped], n_resamples=200, seed=3),
                                  stats.bootstrap_replicates([plain], n_resamples=200, seed=3))


def test_models_compared_on_trials_must_group_them_alike():
    rng = np.random.default_rng(9)
    a = _speaker_trials(rng)
    regrouped = TrialStats(a.ids, a.targets, a.scores, (0,), tuple(reversed(a.groups)))
    with pytest.raises(ValueError, match="cluster their items alike"):
        stats.paired_bootstrap(a, regrouped, n_resamples=10)
    with pytest.raises(ValueError, match="group their shared items differently"):
        stats.align(a, regrouped)
    assert stats.align(a, a)[0].groups == a.groups
