"""Upstream training's faster paths against today's: prefetched batches, fused AdamW, opt-in compile."""

from __future__ import annotations

import os
from collections import Counter

import pytest
import torch
from torch import nn

from harness.core.plan import stage_key
from harness.data.batching import DynamicBatchSampler
from harness.models.upstream_speed import compile_module, compile_regions
from harness.training import loop
from harness.training.loop import TrainConfig, _make_optimizer, _Prefetcher, fit
from harness.training.stable_ft import StableFineTuning
from plugins.finetune.supervised import SupervisedParams
from plugins.upstreams.hubert import HubertParams, HubertPlugin
from tests.finetune_helpers import TinyUpstream


class Regression:
    """Items of varying length; a batch is their zero-padded inputs and targets."""

    def __init__(self, n: int = 40):
        g = torch.Generator().manual_seed(0)
        self.lengths = [1 + (7 * i) % 9 for i in range(n)]
        self.x = [torch.randn(k, 4, generator=g) for k in self.lengths]
        self.y = torch.randn(n, generator=g)
        self.collated: list[list[int]] = []

    def collate(self, indices: list[int]) -> dict[str, torch.Tensor]:
        self.collated.append(list(indices))
        return {"x": torch.stack([self.x[i].sum(0) for i in indices]), "y": self.y[indices]}


def _train(prefetch: bool, accumulate: int = 1) -> tuple[nn.Module, list[list[int]]]:
    """A model trained 17 steps, and the batches its collate saw (in the order it saw them)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.2), nn.Tanh(), nn.Linear(8, 1))
    data = Regression()
    sampler = DynamicBatchSampler(data.lengths, 20, seed=5)
    cfg = TrainConfig(steps=17, lr=1e-2, accumulate=accumulate, prefetch=prefetch)
    fit(model, lambda b: (model(b["x"]).squeeze(-1) - b["y"]).pow(2).mean(), sampler, data.collate, cfg)
    return model, data.collated


@pytest.mark.parametrize(("accumulate", "depth"), [(1, 1), (2, 1), (1, 3), (2, 3)])
def test_prefetched_batches_are_todays_in_the_same_order(accumulate, depth, monkeypatch):
    plain, plain_batches = _train(False, accumulate)
    monkeypatch.setattr(loop, "prefetch_depth", lambda device: depth)
    ahead, ahead_batches = _train(True, accumulate)
    steps = 17 * accumulate
    # plus at most the steps drawn ahead and never used (those not started when training ends are cancelled)
    assert steps <= len(ahead_batches) <= steps + depth * accumulate
    if depth == 1:
        assert ahead_batches[:steps] == plain_batches
    else:  # several threads collate in any order: every batch trained on was collated
        assert not Counter(map(tuple, plain_batches)) - Counter(map(tuple, ahead_batches))
    for a, b in zip(ahead.state_dict().values(), plain.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # the same batches in the same order, hence the same weights


@pytest.mark.parametrize("depth", [1, 3])
def test_prefetcher_hands_out_batches_in_order_and_checkpoints_their_position(depth):
    sampler = DynamicBatchSampler([1.0] * 10, 2.0, seed=1)  # five batches an epoch
    reference = DynamicBatchSampler([1.0] * 10, 2.0, seed=1)

    def forever(s):
        while True:
            yield from s

    expected = forever(reference)
    prefetcher = _Prefetcher(forever(sampler), lambda idx: [i * 10 for i in idx], sampler, per_step=1,
                             pin=False, depth=depth)
    try:
        for step in range(12):
            [(indices, future)] = prefetcher.take()
            assert indices == next(expected)
            assert future.result() == [i * 10 for i in indices]
            assert prefetcher.state["epoch"] * 5 + prefetcher.state["position"] == step + 1
        assert len(prefetcher.ahead) == depth  # the next ``depth`` steps are being collated
    finally:
        prefetcher.close()


def test_collating_threads_run_torch_on_one_thread_and_the_step_keeps_its_threads():
    """Two OpenMP teams on two cores slowed the loop 1.5× (see _Prefetcher); the step's own count stays."""
    import threading

    before = torch.get_num_threads()
    seen: dict[str, int] = {}

    def collate(indices: list[int]) -> dict[str, torch.Tensor]:
        seen["collate"] = torch.get_num_threads()
        return {"x": torch.randn(len(indices), 4), "y": torch.randn(len(indices))}

    def loss_fn(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        seen["step"] = torch.get_num_threads()
        return (model(batch["x"]).squeeze(-1) - batch["y"]).pow(2).mean()

    torch.set_num_threads(2)
    try:
        model = nn.Linear(4, 1)
        sampler = DynamicBatchSampler([1.0] * 8, 2.0, seed=0)
        fit(model, loss_fn, sampler, collate, TrainConfig(steps=3, lr=1e-2, prefetch=True))
        later = []  # a thread started after training takes the count set before it, not the collators' one
        thread = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
        thread.start()
        thread.join()
        assert seen == {"collate": 1, "step": 2} and torch.get_num_threads() == 2 and later == [2]
    finally:
        torch.set_num_threads(before)


def test_fused_adamw_only_on_cuda_and_same_update_rule():
    model = nn.Linear(6, 3)
    optimizer = _make_optimizer(model, TrainConfig(steps=1, lr=1e-3))
    assert not optimizer.defaults["fused"]  # CPU: the plain loop, as before
    torch.manual_seed(1)
    weights = [p.detach().clone() for p in model.parameters()]
    grads = [torch.randn_like(w) for w in weights]
    results = []
    for fused in (False, True):  # the fused kernel also exists on the CPU: compare the maths there
        params = [nn.Parameter(w.clone()) for w in weights]
        opt = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.1, fused=fused)
        for _ in range(3):
            for p, g in zip(params, grads, strict=True):
                p.grad = g.clone()
            opt.step()
        results.append(params)
    for a, b in zip(*results, strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_compile_is_off_by_default_and_keeps_existing_stage_keys():
    off = SupervisedParams(task="pr")
    assert "compile" not in off.model_dump(mode="json")
    on = SupervisedParams(task="pr", compile=True)
    assert on.model_dump(mode="json")["compile"] is True
    key = lambda p: stage_key("finetune", "supervised", "1", p.model_dump(mode="json"), {}, 0)  # noqa: E731
    assert key(off) == key(SupervisedParams(task="pr", compile=False)) != key(on)


def test_compile_reaches_the_upstream():
    upstream = TinyUpstream()
    StableFineTuning(upstream, nn.Linear(16, 2), SupervisedParams(task="pr", steps=10))
    assert upstream._compiled_call_impl is None
    StableFineTuning(upstream, nn.Linear(16, 2), SupervisedParams(task="pr", steps=10, compile=True))
    assert upstream._compiled_call_impl is not None


def test_compile_graphs_records_cuda_graphs_of_bucketed_shapes_and_marks_each_step(monkeypatch):
    from harness.core.errors import HarnessError
    from harness.core.params import validate_params
    from harness.data.waveforms import AUTOTUNE_BUCKET_SECONDS, SAMPLE_RATE
    from harness.training.stable_ft import training_waveforms

    graphs = SupervisedParams(task="pr", steps=10, compile="graphs")
    assert graphs.model_dump(mode="json")["compile"] == "graphs"
    key = lambda p: stage_key("finetune", "supervised", "1", p.model_dump(mode="json"), {}, 0)  # noqa: E731
    assert len({key(graphs), key(SupervisedParams(task="pr", steps=10, compile=True)),
                key(SupervisedParams(task="pr", steps=10))}) == 3
    with pytest.raises(HarnessError) as refused:  # one sentence, not one per member of the union
        validate_params(SupervisedParams, {"task": "pr", "compile": "fast"}, "finetune.pr")
    assert str(refused.value) == "finetune.pr.compile: use true, false or graphs (got 'fast')."
    rows = [{"id": "a", "duration": 1.0}]
    assert training_waveforms(rows, graphs, torch.device("cuda")).pad_multiple == AUTOTUNE_BUCKET_SECONDS * SAMPLE_RATE
    assert training_waveforms(rows, graphs, torch.device("cpu")).pad_multiple == 1

    modes, steps = [], []
    monkeypatch.setattr(nn.Module, "compile", lambda self, **kw: modes.append(kw))
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: steps.append(1))
    plain = StableFineTuning(TinyUpstream(), nn.Linear(16, 2), SupervisedParams(task="pr", steps=10, compile=True))
    plain.before_step(0)
    tuned = StableFineTuning(TinyUpstream(), nn.Linear(16, 2), graphs)
    for step in range(3):
        tuned.before_step(step)
    assert modes == [{"dynamic": True, "mode": None}, {"dynamic": True, "mode": "reduce-overhead"}]
    assert steps == [1, 1, 1]


def test_compile_takes_the_transformer_layers_of_a_wav2vec2_family_model():
    model = HubertPlugin().build(HubertParams(preset="tiny"), seed=0)
    compile_module(model)
    assert model._compiled_call_impl is None and model.feature_extractor._compiled_call_impl is None
    assert all(layer._compiled_call_impl is not None for layer in model.encoder.layers)
    tiny = TinyUpstream()  # no transformer layers: the module itself
    assert compile_regions(tiny) == [tiny]


@pytest.mark.skipif(not os.environ.get("HARNESS_TEST_COMPILE"),
                    reason="torch.compile of the tiny HuBERT's layers takes about 20 s on 2 CPU cores; "
                           "set HARNESS_TEST_COMPILE=1 to run it")
def test_compiled_tiny_hubert_equals_eager():
    model = HubertPlugin().build(HubertParams(preset="tiny"), seed=0)
    wavs, lengths = torch.randn(2, 16000), torch.tensor([16000, 12000])
    with torch.no_grad():
        eager = model(wavs, lengths)
        compile_module(model)
        compiled = model(wavs, lengths)
    for a, b in zip(compiled.hidden_states, eager.hidden_states, strict=True):
        assert (a - b).abs().max() < 1e-5
