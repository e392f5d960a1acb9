"""Batch samplers for the training loop: length-bucketed dynamic batches and the fixed-size baseline.

Both yield lists of item indices, one epoch per ``iter()``, and remember where they are
(``state_dict``: epoch and position) so a resumed run continues with the very next batch.

The dynamic sampler caps a batch by its *padded* total, ``len(batch) * max(lengths in batch)``,
which is what memory and compute pay for. Items are sorted by length and packed greedily, so
neighbours in a batch have nearly the same length and padding stays small. As in fairseq's
``batch_by_size``, the batches are formed once and only their order is shuffled each epoch
(ties in length are broken by a seeded permutation): batch composition is stable, which keeps the
padding fraction low, and the order still changes with the epoch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import numpy as np

from harness.core.errors import StageError

log = logging.getLogger("harness.data.batching")


def _rng(seed: int, stream: int, epoch: int = 0) -> np.random.Generator:
    return np.random.default_rng([int(seed) % 2**63, stream, int(epoch)])


def _check_batch_size(batch_size: int) -> int:
    if batch_size < 1:
        raise StageError(f"the batch size must be at least 1 (got {batch_size}).")
    return int(batch_size)


def _longest_first(keys: Sequence[float]) -> list[int]:
    """Item indices by descending key; a stable sort, so ties keep the items' order (as s3prl's)."""
    return sorted(range(len(keys)), key=lambda i: -float(keys[i]))


class _EpochSampler:
    """Epoch/position bookkeeping shared by both samplers; subclasses give the epoch's batches."""

    def __init__(self, seed: int, shuffle: bool):
        self.seed = int(seed)
        self.shuffle = shuffle
        self.epoch = 0
        self.position = 0

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._epoch_batches(self.epoch)
        while self.position < len(batches):
            i = self.position
            self.position = i + 1  # counted as consumed when handed out
            yield list(batches[i])
        self.epoch += 1
        self.position = 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        self.epoch = int(state["epoch"])
        self.position = int(state["position"])


class DynamicBatchSampler(_EpochSampler):
    """Length-bucketed batches whose padded total (items × longest item) stays within ``max_total``.

    ``lengths`` are in any unit (seconds of audio, frames); ``max_items`` optionally caps the number
    of items per batch. An item longer than ``max_total`` gets a batch of its own (never dropped).
    """

    def __init__(
        self,
        lengths: Sequence[float],
        max_total: float,
        seed: int,
        shuffle: bool = True,
        max_items: int | None = None,
    ):
        super().__init__(seed, shuffle)
        if max_total <= 0:
            raise StageError(
                f"the batch cap must be positive (got max_total={max_total}); set a positive batch size."
            )
        self.lengths = np.asarray(lengths, dtype=np.float64)
        self.max_total = float(max_total)
        self.max_items = max_items
        self._batches = self._pack()
        too_long = int((self.lengths > self.max_total).sum())
        if too_long:
            log.warning(
                "%d item(s) are longer than the batch cap %.3g; each gets a batch of its own.",
                too_long,
                self.max_total,
            )

    def _pack(self) -> list[list[int]]:
        # Seeded permutation first, then a stable sort: equal lengths are ordered by the seed.
        n = len(self.lengths)
        perm = _rng(self.seed, 1).permutation(n) if self.shuffle else np.arange(n)
        order = perm[np.argsort(self.lengths[perm], kind="stable")]
        batches: list[list[int]] = []
        current: list[int] = []
        longest = 0.0
        for idx in order.tolist():
            length = float(self.lengths[idx])
            new_longest = max(longest, length)
            full = self.max_items is not None and len(current) >= self.max_items
            if current and (full or new_longest * (len(current) + 1) > self.max_total):
                batches.append(current)
                current, new_longest = [], length
            current.append(idx)
            longest = new_longest
        if current:
            batches.append(current)
        return batches

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        if not self.shuffle:
            return self._batches
        order = _rng(self.seed, 2, epoch).permutation(len(self._batches))
        return [self._batches[i] for i in order]

    def __len__(self) -> int:
        return len(self._batches)


class FixedBatchSampler(_EpochSampler):
    """``batch_size`` items per batch in a fresh random order each epoch (the last batch may be smaller)."""

    def __init__(self, n_items: int, batch_size: int, seed: int, shuffle: bool = True):
        super().__init__(seed, shuffle)
        self.n_items = int(n_items)
        self.batch_size = _check_batch_size(batch_size)

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        n = self.n_items
        order = (_rng(self.seed, 3, epoch).permutation(n) if self.shuffle else np.arange(n)).tolist()
        return [order[i : i + self.batch_size] for i in range(0, self.n_items, self.batch_size)]

    def __len__(self) -> int:
        return (self.n_items + self.batch_size - 1) // self.batch_size


class SortedSliceSampler(_EpochSampler):
    """s3prl's bucketing for its CTC tasks (``downstream/ctc``, ``bucketing: True``): windows of
    ``batch_size`` neighbours in an order sorted by ``keys``, descending (the label lengths there).

    An epoch has one window per item: every start position once, in a seeded random order; a start
    too close to the end is moved back so the window stays full. Where ``durations`` are given, a
    window whose first item is longer than ``half_batch_seconds`` keeps only its first half (s3prl's
    300,000 samples at 16 kHz). Batches hold utterances of similar length, so they carry little
    padding.
    """

    def __init__(
        self,
        keys: Sequence[float],
        batch_size: int,
        seed: int,
        durations: Sequence[float] | None = None,
        half_batch_seconds: float = 300_000 / 16_000,
    ):
        super().__init__(seed, shuffle=True)
        self.order = _longest_first(keys)
        self.batch_size = _check_batch_size(batch_size)
        self.durations = None if durations is None else [float(d) for d in durations]
        self.half_batch_seconds = float(half_batch_seconds)

    def window(self, start: int) -> list[int]:
        """The batch of the window that starts at ``start`` of the sorted order."""
        start = max(0, min(len(self.order) - self.batch_size, start))
        batch = self.order[start : start + self.batch_size]
        if self.durations is not None and len(batch) > 1 and self.durations[batch[0]] > self.half_batch_seconds:
            batch = batch[: len(batch) // 2]
        return batch

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        return [self.window(start) for start in _rng(self.seed, 4, epoch).permutation(len(self.order)).tolist()]

    def __len__(self) -> int:
        return len(self.order)


class SortedBucketSampler(_EpochSampler):
    """s3prl's bucketing for its ASR recipe (``downstream/asr/dataset.py``): the items sorted by
    ``keys`` (audio length there), descending, cut into consecutive buckets of ``batch_size``, the
    buckets in a seeded random order each epoch.

    A full bucket whose longest key exceeds ``half_above`` becomes two batches of half the size; a
    last, partial bucket is kept when it holds at least two items. s3prl's keys are sample counts
    and its threshold is 2,000 samples, so every LibriSpeech bucket is halved there: its "batch 32"
    trains on 16 utterances a step.
    """

    def __init__(self, keys: Sequence[float], batch_size: int, seed: int, half_above: float | None = None):
        super().__init__(seed, shuffle=True)
        batch_size = _check_batch_size(batch_size)
        order = _longest_first(keys)
        self.batches: list[list[int]] = []
        for start in range(0, len(order), batch_size):
            bucket = order[start : start + batch_size]
            if len(bucket) < batch_size:
                if len(bucket) > 1:
                    self.batches.append(bucket)
            elif batch_size >= 2 and half_above is not None and float(keys[bucket[0]]) > half_above:
                self.batches += [bucket[: batch_size // 2], bucket[batch_size // 2 :]]
            else:
                self.batches.append(bucket)

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        return [self.batches[i] for i in _rng(self.seed, 5, epoch).permutation(len(self.batches)).tolist()]

    def __len__(self) -> int:
        return len(self.batches)


class BalancedBatchSampler(_EpochSampler):
    """Class-balanced batches drawn with replacement, as s3prl's keyword spotting trains
    (``WeightedRandomSampler`` over every item, weight ``1 / count`` of its class, ``drop_last``).

    An epoch draws as many items as there are (each class equally likely, the items of a class
    equally likely within it) in ``batch_size`` batches; a last, partial batch is dropped.
    """

    def __init__(self, classes: Sequence[str], batch_size: int, seed: int):
        super().__init__(seed, shuffle=True)
        self.batch_size = _check_batch_size(batch_size)
        if len(classes) < self.batch_size:
            raise StageError(f"balanced batches of {self.batch_size} need at least that many items "
                             f"(got {len(classes)}); lower the batch size.")
        _, index, counts = np.unique(np.asarray(classes, dtype=str), return_inverse=True, return_counts=True)
        weights = 1.0 / counts[index]
        self.probabilities = weights / weights.sum()

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        n = len(self.probabilities)
        draws = _rng(self.seed, 6, epoch).choice(n, size=n, replace=True, p=self.probabilities).tolist()
        return [draws[i : i + self.batch_size] for i in range(0, n - self.batch_size + 1, self.batch_size)]

    def __len__(self) -> int:
        return len(self.probabilities) // self.batch_size


def padding_fraction(lengths: Sequence[float], batches: Sequence[Sequence[int]]) -> float:
    """Share of a padded batch that is padding, over all ``batches``: 1 - real / (items × longest)."""
    lengths = np.asarray(lengths, dtype=np.float64)
    real = padded = 0.0
    for batch in batches:
        if len(batch):
            sub = lengths[list(batch)]
            real += float(sub.sum())
            padded += float(sub.max()) * len(batch)
    return 1.0 - real / padded if padded else 0.0


class MixedBatchSampler:
    """One batch from each of several samplers per draw, as one index list (multi-task batches).

    Sampler ``k``'s indices are shifted by ``offsets[k]`` so the collate function can tell the tasks
    apart (:meth:`split`). Each sampler cycles over its own epochs; an "epoch" of the mixture is
    as many draws as the longest sampler has batches. The state is the samplers' states.
    """

    def __init__(self, samplers: Sequence[_EpochSampler], sizes: Sequence[int]):
        self.samplers = list(samplers)
        self.offsets = [int(x) for x in np.cumsum([0, *sizes[:-1]])]
        self.sizes = [int(s) for s in sizes]

    def __len__(self) -> int:
        return max(len(s) for s in self.samplers) if self.samplers else 0

    @staticmethod
    def _forever(sampler: _EpochSampler) -> Iterator[list[int]]:
        while True:
            yield from sampler

    def __iter__(self) -> Iterator[list[int]]:
        streams = [self._forever(s) for s in self.samplers]
        for _ in range(len(self)):
            yield [off + i for off, it in zip(self.offsets, streams, strict=True) for i in next(it)]

    def split(self, indices: Sequence[int]) -> list[list[int]]:
        """Per sampler, the local indices among ``indices``."""
        out: list[list[int]] = [[] for _ in self.samplers]
        for i in indices:
            k = int(np.searchsorted(self.offsets, i, side="right")) - 1
            out[k].append(int(i) - self.offsets[k])
        return out

    def state_dict(self) -> dict:
        return {"samplers": [s.state_dict() for s in self.samplers]}

    def load_state_dict(self, state: dict) -> None:
        for s, st in zip(self.samplers, state["samplers"], strict=True):
            s.load_state_dict(st)
