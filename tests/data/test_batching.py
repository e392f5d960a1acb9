"""s3prl's CTC bucketing (SortedSliceSampler): windows of neighbours in descending key order."""

from __future__ import annotations

import numpy as np
import pytest

from harness.core.errors import StageError
from harness.data.batching import FixedBatchSampler, SortedSliceSampler, padding_fraction


def test_windows_are_neighbours_in_descending_key_order_one_per_start():
    keys = [3, 9, 1, 9, 5, 7, 2]  # sorted descending, ties in item order: 1, 3, 5, 4, 0, 6, 2
    sampler = SortedSliceSampler(keys, batch_size=3, seed=0)
    assert sampler.order == [1, 3, 5, 4, 0, 6, 2]
    assert len(sampler) == 7
    epoch = list(sampler)
    assert len(epoch) == 7
    windows = {tuple(sampler.window(start)) for start in range(7)}
    assert {tuple(b) for b in epoch} == windows
    # a start too close to the end moves back so that the window stays full
    assert sampler.window(6) == sampler.window(4) == [0, 6, 2]
    assert sampler.window(0) == [1, 3, 5]
    # starts come in a seeded random order: the same seed repeats it, the next epoch differs
    assert [sampler.window(s) for s in range(7)] != epoch
    assert list(SortedSliceSampler(keys, 3, seed=0)) == epoch
    assert list(sampler) != epoch


def test_long_first_items_halve_the_window_and_small_sets_give_whole_batches():
    keys = [10, 8, 6, 4]
    durations = [20.0, 3.0, 2.0, 1.0]  # the first item is over s3prl's 300,000 samples (18.75 s)
    sampler = SortedSliceSampler(keys, batch_size=4, seed=1, durations=durations)
    assert sampler.window(0) == [0, 1]
    assert SortedSliceSampler(keys, 4, seed=1, durations=[18.0] * 4).window(0) == [0, 1, 2, 3]
    assert SortedSliceSampler(keys[:2], 16, seed=1).window(1) == [0, 1]
    with pytest.raises(StageError, match="batch size must be at least 1"):
        SortedSliceSampler(keys, 0, seed=1)


def test_resuming_mid_epoch_continues_the_same_batches():
    keys = list(range(20))
    whole = list(SortedSliceSampler(keys, 4, seed=5))  # one epoch: 20 windows
    first = SortedSliceSampler(keys, 4, seed=5)
    it = iter(first)
    head = [next(it) for _ in range(7)]
    resumed = SortedSliceSampler(keys, 4, seed=5)
    resumed.load_state_dict(first.state_dict())
    assert head + list(resumed) == whole


def test_sorted_windows_carry_far_less_padding_than_random_batches():
    durations = np.random.default_rng(0).uniform(1.0, 8.0, size=400)
    sorted_batches = list(SortedSliceSampler(durations, 16, seed=0))
    random_batches = list(FixedBatchSampler(len(durations), 16, seed=0))
    assert padding_fraction(durations, sorted_batches) < 0.05
    assert padding_fraction(durations, random_batches) > 0.3


def test_asr_buckets_are_fixed_cuts_of_the_sorted_order_halved_when_long():
    from harness.data.batching import SortedBucketSampler

    durations = [1.0, 6.0, 3.0, 5.0, 2.0, 4.0, 0.5, 7.0, 0.1]  # descending: 7, 1, 3, 5, 2, 4, 0, 6, 8
    sampler = SortedBucketSampler(durations, batch_size=4, seed=0, half_above=4.5)
    # buckets [7, 1, 3, 5] (longest 7 s > 4.5: halved), [2, 4, 0, 6] (3 s: whole), [8] (alone: dropped)
    assert sorted(sampler.batches) == sorted([[7, 1], [3, 5], [2, 4, 0, 6]])
    assert len(sampler) == 3
    epoch = list(sampler)
    assert sorted(epoch) == sorted(sampler.batches)
    assert list(SortedBucketSampler(durations, 4, seed=0, half_above=4.5)) == epoch
    # s3prl's threshold of 2,000 samples halves every bucket; a partial last bucket of two stays whole
    every = SortedBucketSampler(durations[:6], 4, seed=0, half_above=2000 / 16000)
    assert sorted(len(b) for b in every.batches) == [2, 2, 2]
