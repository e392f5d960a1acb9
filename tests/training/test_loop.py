"""The shared training loop: schedules, samplers, accumulation, frozen parameters, guards, best-on-dev."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import harness
from harness.core.errors import StageError
from harness.core.stage import StageContext
from harness.data.batching import DynamicBatchSampler, FixedBatchSampler, padding_fraction
from harness.training.loop import TrainConfig, fit, lr_factor

HARNESS = Path(harness.__file__).parent


def make_ctx(tmp_path) -> StageContext:
    return StageContext(
        key="k" * 16,
        out_dir=tmp_path / "out",
        work_dir=tmp_path / "work",
        cache_root=tmp_path / "cache",
        seed=0,
        plugins=None,
    )


class Problem:
    """A small regression: y = x·w + noise, a two-layer model, per-item mean loss."""

    def __init__(self, n: int = 48, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 6, generator=g)
        self.y = self.x @ torch.randn(6, 1, generator=g) + 0.05 * torch.randn(n, 1, generator=g)
        torch.manual_seed(seed)
        self.model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))

    def collate(self, idx):
        return self.x[idx], self.y[idx]

    def loss(self, batch):
        x, y = batch
        return torch.nn.functional.mse_loss(self.model(x), y)


def test_schedules_match_hand_computed_values():
    # speech_ft over 20 steps: warm-up 2 steps, flat to step 9, then linear decay from step 10 to 0.
    got = [lr_factor("speech_ft", s, 20) for s in range(20)]
    assert got == pytest.approx([0.5, 1.0] + [1.0] * 8 + [1 - k / 10 for k in range(10)])
    assert [lr_factor("linear", s, 4, 0.25) for s in range(4)] == pytest.approx([1.0, 1.0, 2 / 3, 1 / 3])
    assert [lr_factor("cosine", s, 4) for s in range(4)] == pytest.approx(
        [0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)]
    )
    assert [lr_factor("constant", s, 10, 0.3) for s in range(4)] == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0])
    with pytest.raises(StageError, match="unknown learning-rate schedule 'cos'"):
        lr_factor("cos", 0, 10)


def test_dynamic_sampler_covers_every_item_once_within_the_cap_and_resumes():
    rng = np.random.default_rng(0)
    lengths = rng.uniform(1.0, 10.0, size=300).tolist() + [50.0]  # the last one exceeds the cap
    sampler = DynamicBatchSampler(lengths, max_total=40.0, seed=3, max_items=16)
    epoch0 = list(sampler)
    flat = sorted(i for b in epoch0 for i in b)
    assert flat == list(range(301)), "each item exactly once per epoch, the over-long one included"
    for b in epoch0:
        assert len(b) <= 16
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 40.0
    assert padding_fraction(lengths, epoch0) < 0.05
    fixed = list(FixedBatchSampler(len(lengths), 8, seed=3))
    assert padding_fraction(lengths, fixed) > 0.3
    epoch1 = list(sampler)
    assert epoch1 != epoch0 and sorted(map(tuple, epoch1)) == sorted(map(tuple, epoch0))
    # stop mid-epoch, restore into a fresh sampler: the rest of the epoch is identical
    it = iter(sampler)
    head = [next(it) for _ in range(5)]
    state = sampler.state_dict()
    rest = list(it)
    other = DynamicBatchSampler(lengths, max_total=40.0, seed=3, max_items=16)
    other.load_state_dict(state)
    assert list(other) == rest and len(head) + len(rest) == len(sampler)


def test_accumulation_equals_one_large_batch():
    results = []
    for batch, acc in ((8, 1), (4, 2)):
        p = Problem()
        cfg = TrainConfig(steps=12, lr=0.02, accumulate=acc, weight_decay=0.01, schedule="linear")
        fit(p.model, p.loss, FixedBatchSampler(48, batch, seed=0, shuffle=False), p.collate, cfg)
        results.append(torch.cat([t.flatten() for t in p.model.state_dict().values()]))
    torch.testing.assert_close(results[0], results[1], rtol=1e-5, atol=1e-6)


def test_frozen_parameters_get_no_update_even_with_weight_decay():
    p = Problem()
    first = p.model[0]
    start = {k: v.clone() for k, v in first.state_dict().items()}
    seen = {}

    def before_step(step: int) -> None:
        first.requires_grad_(step >= 5)
        if step == 5:
            seen.update({k: v.clone() for k, v in first.state_dict().items()})

    cfg = TrainConfig(steps=10, lr=0.05, weight_decay=0.5)
    fit(p.model, p.loss, FixedBatchSampler(48, 8, seed=1), p.collate, cfg, before_step=before_step)
    for k in start:
        assert torch.equal(seen[k], start[k]), f"{k} moved while frozen"
        assert not torch.equal(first.state_dict()[k], start[k]), f"{k} never trained after unfreezing"


def test_biases_are_decayed_only_when_every_parameter_is():
    from harness.training.loop import _make_optimizer

    model = torch.nn.Linear(4, 3)
    for every, expected in ((False, {0.01: 1, 0.0: 1}), (True, {0.01: 2})):
        groups = _make_optimizer(model, TrainConfig(steps=1, lr=1e-3, weight_decay=0.01,
                                                    decay_every_parameter=every)).param_groups  # fmt: skip
        assert {g["weight_decay"]: len(g["params"]) for g in groups} == expected
    from plugins.downstreams.asv import PROTOCOLS

    assert PROTOCOLS["superb"].train_config().decay_every_parameter  # s3prl's ASV: torch's AdamW on everything


def test_best_on_dev_weights_are_restored(tmp_path):
    p = Problem()
    snapshots, scripted = [], iter([3.0, 1.0, 2.0, 4.0])

    def evaluate():
        snapshots.append({k: v.clone() for k, v in p.model.state_dict().items()})
        return {"err": next(scripted), "other": 0.0}

    cfg = TrainConfig(steps=20, lr=0.05, eval_every=5)
    ctx = make_ctx(tmp_path)
    res = fit(p.model, p.loss, FixedBatchSampler(48, 8, seed=2), p.collate, cfg, ctx, evaluate, ("err", "lower"))
    assert (res.best_step, res.best_metrics["err"], res.steps_done) == (10, 1.0, 20)
    assert [h["step"] for h in res.history] == [5, 10, 15, 20]
    for k, v in p.model.state_dict().items():
        assert torch.equal(v, snapshots[1][k])
    assert any("kept the weights of step 10" in m for m in ctx.messages)
    with pytest.raises(StageError, match="the dev evaluation gave no metric 'acc'"):
        fit(
            Problem().model,
            p.loss,
            FixedBatchSampler(48, 8, seed=2),
            p.collate,
            TrainConfig(steps=2, lr=0.1),
            evaluate=lambda: {"err": 1.0},
            primary=("acc", "higher"),
        )


def test_nan_loss_skips_its_step_and_too_many_stop_the_stage(tmp_path):
    p = Problem()
    state = {"step": 0}
    after = {}

    def before_step(step):
        state["step"] = step
        after[step] = {k: v.clone() for k, v in p.model.state_dict().items()}

    def loss(batch):
        value = p.loss(batch)
        return value * float("nan") if state["step"] == 3 else value

    ctx = make_ctx(tmp_path)
    res = fit(
        p.model,
        loss,
        FixedBatchSampler(48, 8, seed=0),
        p.collate,
        TrainConfig(steps=6, lr=0.05),
        ctx,
        before_step=before_step,
    )
    assert res.skipped_steps == 1 and res.steps_done == 6
    assert all(torch.equal(after[3][k], after[4][k]) for k in after[3]), "the NaN step changed the weights"
    assert not all(torch.equal(after[2][k], after[3][k]) for k in after[2])
    assert "skipped step 3: the loss is nan (1 in a row)" in ctx.messages

    def always_inf(batch):
        return p.loss(batch) + float("inf")

    with pytest.raises(
        StageError, match=r"^3 training steps in a row had a non-finite loss or gradient \(last at step 2\)"
    ):
        fit(
            p.model,
            always_inf,
            FixedBatchSampler(48, 8, seed=0),
            p.collate,
            TrainConfig(steps=10, lr=0.05, max_bad_steps=3),
        )


def test_out_of_memory_halves_the_batch_and_skips_no_data(tmp_path):
    reference = Problem()
    cfg = TrainConfig(steps=6, lr=0.05)
    fit(reference.model, reference.loss, FixedBatchSampler(48, 8, seed=0), reference.collate, cfg)

    p = Problem()
    seen: list[int] = []

    def collate(idx):
        if len(idx) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        seen.extend(idx)
        return p.collate(idx)

    ctx = make_ctx(tmp_path)
    res = fit(p.model, p.loss, FixedBatchSampler(48, 8, seed=0), collate, cfg, ctx)
    assert res.batch_splits == 4 and res.skipped_steps == 0
    assert sorted(seen) == list(range(48)), "every item of the 6 batches of 8 was trained on exactly once"
    assert sum("CUDA out of memory at step 0: halving the batch" in m for m in ctx.messages) == 2
    for k, v in reference.model.state_dict().items():
        torch.testing.assert_close(p.model.state_dict()[k], v, rtol=1e-5, atol=1e-6)


def test_repeated_runs_in_one_stage_resume_in_call_order(tmp_path):
    from harness.core.errors import StopRequested
    from harness.training.thermal import ThermalGuard

    def two_folds(ctx, hot_second: bool):
        out = []
        for fold in range(2):
            p = Problem(seed=fold)
            readings = iter([60.0] * 3 + [99.0]) if hot_second and fold == 1 else None
            guard = ThermalGuard((lambda r=readings: next(r)) if readings else None, poll_s=0)
            fit(p.model, p.loss, FixedBatchSampler(48, 8, seed=fold), p.collate, TrainConfig(steps=6, lr=0.05),
                ctx, thermal=guard, name="probe")  # fmt: skip
            out.append(torch.cat([v.flatten() for v in p.model.state_dict().values()]))
        return out

    expected = two_folds(make_ctx(tmp_path / "a"), hot_second=False)
    with pytest.raises(StopRequested):
        two_folds(make_ctx(tmp_path / "b"), hot_second=True)
    ctx = make_ctx(tmp_path / "b")
    got = two_folds(ctx, hot_second=False)
    assert "training run 'probe' had already finished; reusing its weights" in ctx.messages
    assert "resumed training run 'probe#1' at step 3 of 6" in ctx.messages
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])


class _HostReads(torch.overrides.TorchFunctionMode):
    """Counts the harness's reads of tensor values back to Python (on CUDA each one waits for the GPU;
    torch's own, such as the CPU optimizers' step counters, are not the harness's to count)."""

    READS = {torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.__float__, torch.Tensor.__bool__}

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        caller = Path(sys._getframe(1).f_code.co_filename)
        self.count += func in self.READS and caller.is_relative_to(HARNESS)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("accumulate", [1, 3])
def test_a_step_reads_its_losses_and_gradient_norm_back_once(accumulate):
    """One device sync a step, however many batches it accumulates: the losses and the gradient norm
    are read together after the backward passes, and the step's mean loss is unchanged."""
    p = Problem()
    reads = _HostReads()
    steps = 4
    cfg = TrainConfig(steps=steps, lr=0.05, accumulate=accumulate, checkpoint_minutes=None)
    with reads:
        res = fit(p.model, p.loss, FixedBatchSampler(48, 4, seed=0), p.collate, cfg)
    assert res.steps_done == steps and res.skipped_steps == 0
    assert reads.count == steps
