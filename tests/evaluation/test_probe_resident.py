"""Cached features held in device memory (the CUDA path), forced on the CPU: the same batches, metrics
and layer weights as batches built on the host and moved one at a time."""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from harness.core.manifest import PreparedCorpus
from harness.core.params import validate_params
from harness.core.registry import PluginManager
from harness.evaluation import probe
from harness.evaluation.probe import (
    _DeviceFrames,
    _hold_on_device,
    _pad_states,
    _pad_stored,
    _Raw,
    _Source,
    _to,
    feature_cache_for,
    run_probe,
)
from harness.evaluation.probe_settings import task_splits
from harness.models.feature_cache import FrameStore
from tests.downstream_helpers import FakeUpstream, make_ctx, make_tiny_corpus


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return PreparedCorpus(make_tiny_corpus(tmp_path_factory.mktemp("tones")))


def _store(rng: np.random.Generator, lengths: list[int], wide: bool = False) -> FrameStore:
    """Two shards (the second float32 when ``wide``), items at offsets inside them."""
    half = len(lengths) // 2
    entries = []
    for part, dtype in ((lengths[:half], np.float16), (lengths[half:], np.float32 if wide else np.float16)):
        arr = (rng.normal(size=(3, sum(part) + 5, 8)) * 4 + 1).astype(dtype)
        start = 5
        for n in part:
            entries.append((arr, start, n))
            start += n
    return FrameStore(entries)


@pytest.mark.parametrize("wide", [False, True])
def test_gathered_batches_equal_the_host_batches_bit_for_bit(wide):
    store = _store(np.random.default_rng(0), [7, 3, 11, 1, 6, 9], wide)
    frames = _DeviceFrames(store, torch.device("cpu"))
    assert frames.frames.dtype == (torch.float32 if wide else torch.float16)
    assert _DeviceFrames.nbytes(store) == frames.frames.numel() * frames.frames.element_size()
    for indices in ([0, 1, 2, 3, 4, 5], [2, 3], [5, 0, 4], [3]):
        states, lengths = frames.gather(indices)
        ref_states, ref_lengths = _pad_states([store.states(i) for i in indices])
        assert torch.equal(lengths, ref_lengths)
        assert states.shape == ref_states.shape and torch.equal(states, ref_states)


def test_a_read_only_single_layer_cache_is_copied_to_the_device_without_a_warning():
    arr = np.arange(2 * 5 * 4, dtype=np.float16).reshape(1, 10, 4)
    arr.flags.writeable = False  # as a memory-mapped shard opened for reading
    store = FrameStore([(arr, 0, 6), (arr, 6, 4)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        frames = _DeviceFrames(store, torch.device("cpu"))
    assert torch.equal(frames.frames, torch.from_numpy(arr.copy()))


@pytest.mark.parametrize("wide", [False, True])
def test_host_batches_padded_as_stored_and_normed_where_the_probe_trains_equal_the_host_normed_ones(wide):
    store = _store(np.random.default_rng(1), [7, 3, 11, 1, 6, 9], wide)
    for indices in ([0, 1, 2, 3, 4, 5], [2, 3], [5, 0, 4], [3]):
        states, lengths = _pad_stored(store, indices)
        assert states.dtype == (torch.float32 if wide and max(indices) >= 3 else torch.float16)
        moved = _to(_Raw([], states=states, lengths=lengths, unnormed=True), torch.device("cpu"))
        ref_states, ref_lengths = _pad_states([store.states(i) for i in indices])
        assert torch.equal(moved.lengths, ref_lengths) and torch.equal(moved.states, ref_states)


@pytest.mark.parametrize("name", ["pr", "sf"])
def test_a_probe_norming_host_batches_on_its_device_gives_the_same_numbers(tiny, tmp_path, name, monkeypatch):
    task, upstream, splits, settings, cache = _probe_inputs(tiny, tmp_path, name)
    on_host = run_probe(task, upstream, splits, settings, cache, seed=0, resident=False)
    real_init = _Source.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        self.norm_on_device = True  # as on an accelerator

    monkeypatch.setattr(_Source, "__init__", init)
    on_device = run_probe(task, upstream, splits, settings, cache, seed=0, resident=False)
    assert on_device.metrics == on_host.metrics and on_device.records == on_host.records
    assert on_device.layer_weights == on_host.layer_weights and on_device.fit.history == on_host.fit.history


def _probe_inputs(corpus: PreparedCorpus, tmp_path, name: str) -> tuple:
    """run_probe's task, upstream, splits, settings and feature cache for downstream ``name`` (12 steps)."""
    plugin = PluginManager().create("downstream", name)
    params = validate_params(plugin.Params, {"steps": 12, "eval_every": 6}, name)
    task, settings = plugin.make_task(corpus, params), plugin.settings(params)
    upstream = FakeUpstream()
    cache = feature_cache_for(upstream, make_ctx(tmp_path), settings)
    return task, upstream, task_splits(corpus, task.name), settings, cache


@pytest.mark.parametrize("name", ["pr", "sf", "sid"])
def test_probe_with_features_in_device_memory_gives_the_same_numbers(tiny, tmp_path, name):
    task, upstream, splits, settings, cache = _probe_inputs(tiny, tmp_path, name)
    host = run_probe(task, upstream, splits, settings, cache, seed=0, resident=False)
    held = run_probe(task, upstream, splits, settings, cache, seed=0, resident=True)
    assert (host.extra["features_on"], held.extra["features_on"]) == ("host", "device")
    assert held.source == host.source == ("pooled" if name == "sid" else "frames")
    assert held.metrics == host.metrics and held.dev_metrics == host.dev_metrics
    assert held.records == host.records and held.layer_weights == host.layer_weights
    assert held.fit.history == host.fit.history
    assert held.extra["steps_per_second"] > 0 and held.fit.steps_done == 12


@pytest.mark.parametrize("name", ["pr", "sf", "sid"])
def test_host_batches_of_cached_frames_are_built_a_step_ahead_with_the_same_numbers(tiny, tmp_path, name,
                                                                                     monkeypatch):
    task, upstream, splits, settings, cache = _probe_inputs(tiny, tmp_path, name)
    real_fit, prefetched = probe.fit, []

    def fit(model, loss_fn, sampler, collate, config, **kwargs):
        prefetched.append(config.prefetch)
        return real_fit(model, loss_fn, sampler, collate, replace(config, prefetch=force or config.prefetch), **kwargs)

    monkeypatch.setattr(probe, "fit", fit)
    force = False
    runs = [run_probe(task, upstream, splits, settings, cache, seed=0, resident=where) for where in (False, True)]
    force = True  # what it would give: with batches built ahead on every path
    ahead = [run_probe(task, upstream, splits, settings, cache, seed=0, resident=where) for where in (False, True)]
    # built ahead exactly where batches come from cached frames on the host (pooled means are an index)
    assert prefetched[:2] == [name != "sid", False]
    for got, want in zip(runs + ahead[1:], [ahead[0]] * 3, strict=True):
        assert got.metrics == want.metrics and got.records == want.records
        assert got.layer_weights == want.layer_weights and got.fit.history == want.fit.history


def _pooled_source(nbytes: int) -> _Source:
    data = torch.zeros(nbytes // 4)
    return _Source([{"id": str(i), "duration": 1.0} for i in range(len(data))], "pooled", None, data, None)


def test_features_go_to_cuda_only_within_the_share_of_free_memory(monkeypatch):
    sources = [_pooled_source(4000), _pooled_source(2000)]  # 6,000 bytes in all
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (13_000, 80_000))
    assert probe.RESIDENT_SHARE == 0.5
    assert _hold_on_device(sources, cuda, None)  # 6,000 <= 0.5 * 13,000
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (11_000, 80_000))
    assert not _hold_on_device(sources, cuda, None)  # past the share: per-batch transfer
    assert _hold_on_device(sources, cuda, True) and not _hold_on_device(sources, cuda, False)
    assert not _hold_on_device(sources, torch.device("cpu"), None)  # the host path on the CPU by default
    assert not _hold_on_device([], cuda, True)  # nothing cached (features from the upstream): nothing to move


def _per_utterance(hidden: list[torch.Tensor], lengths: list[int], pooled: bool):
    """The on-the-fly batch built utterance by utterance on the host, as the cache builds it."""
    from harness.models.feature_cache import pooled_means, to_frame_dtype

    items = [[h[j, :n].float().cpu() for h in hidden] for j, n in enumerate(lengths)]
    if pooled:
        return torch.stack([pooled_means(s) for s in items])
    return _pad_states([to_frame_dtype(torch.stack(s)).float() for s in items])


@pytest.mark.parametrize(("pooled", "overflow"), [(False, True), (False, False), (True, True)])
def test_on_the_fly_batches_equal_those_built_utterance_by_utterance(pooled, overflow):
    from harness.evaluation.probe import _as_cached

    g = torch.Generator().manual_seed(3)
    lengths = [9, 4, 1, 7]
    hidden = [torch.randn(4, 11, 6, generator=g) * 3 + 1 for _ in range(3)]  # padded past the longest
    if overflow:
        hidden[1][3, 2, 4] = 7e4  # past float16: that utterance stays float32, the others are rounded
    for h in hidden:
        h[:, 9:] = 123.0  # beyond every utterance: never read
    raw = _as_cached([{"id": str(j)} for j in range(4)], hidden, torch.tensor(lengths), pooled)
    want = _per_utterance(hidden, lengths, pooled)
    if pooled:
        assert torch.equal(raw.pooled, want)
        return
    states, want_lengths = want
    assert torch.equal(raw.lengths, want_lengths) and raw.states.shape == states.shape
    assert torch.equal(raw.states, states)
    from harness.models.featurizer import layer_norm

    unrounded = layer_norm(torch.stack([h[:, :9] for h in hidden]))
    assert not torch.equal(raw.states[:, 0], unrounded[:, 0])  # rounded to float16 as stored...
    # ...but the one past its range is not
    assert torch.equal(raw.states[:, 3, :7], unrounded[:, 3, :7]) == overflow
    assert raw.states[:, 2, 1:].abs().sum() == 0  # padding is zero
