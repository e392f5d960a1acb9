"""The thermal guard: a fake sensor makes the loop pause (soft limit) and stop with a checkpoint (hard limit)."""

from __future__ import annotations

import pytest
import torch

from harness.core.errors import StopRequested
from harness.core.stage import StageContext
from harness.data.batching import FixedBatchSampler
from harness.training.loop import TrainConfig, fit
from harness.training.thermal import ThermalGuard, default_guard


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


def readings(values):
    it = iter(values)
    return lambda: next(it)


def test_soft_limit_pauses_until_cool_and_hard_limit_stops():
    clock, said = FakeClock(), []
    guard = ThermalGuard(
        readings([70, 85, 84, 79, 77, 91]),
        soft_c=83,
        hard_c=90,
        poll_s=0,
        cool_poll_s=10,
        sleep=clock.sleep,
        clock=clock,
    )
    assert guard.check(said.append) == "ok" and said == []
    assert guard.check(said.append) == "ok"  # 85: pauses through 84 and 79, resumes at 77 (<= 78)
    assert clock.sleeps == [10, 10, 10] and guard.paused_s == 30
    assert said == [
        "GPU temperature 85 °C is above the soft limit 83 °C; pausing until it cools to 78 °C",
        "GPU cooled to 77 °C; resumed after 30 s",
    ]
    assert guard.check(said.append) == "stop"
    assert guard.reason == "GPU temperature 91 °C reached the hard limit 90 °C"


def test_polls_at_most_every_poll_s_and_a_pause_that_never_cools_stops():
    clock = FakeClock()
    calls = []

    def sensor():
        calls.append(clock.now)
        return 86.0

    guard = ThermalGuard(sensor, poll_s=5, cool_poll_s=60, max_pause_s=120, sleep=clock.sleep, clock=clock)
    assert guard.check(lambda m: None) == "stop"
    assert calls == [0, 60, 120] and "stayed at 86 °C, above 78 °C, for 120 s" in guard.reason
    clock.now += 1
    assert ThermalGuard(None).check(lambda m: None) == "ok"
    assert not default_guard(torch.device("cpu")).enabled


def test_hard_limit_checkpoints_and_a_rerun_resumes_to_identical_weights(tmp_path):
    def setup():
        torch.manual_seed(0)
        x, y = torch.randn(32, 3), torch.randn(32, 1)
        model = torch.nn.Linear(3, 1)
        return model, (lambda b: torch.nn.functional.mse_loss(model(b[0]), b[1])), (lambda i: (x[i], y[i]))

    cfg = TrainConfig(steps=12, lr=0.05, schedule="cosine")
    model, loss, collate = setup()
    fit(model, loss, FixedBatchSampler(32, 4, seed=0), collate, cfg)
    expected = {k: v.clone() for k, v in model.state_dict().items()}

    ctx = StageContext(
        key="t" * 12, out_dir=tmp_path / "o", work_dir=tmp_path / "w", cache_root=tmp_path / "c", seed=0, plugins=None
    )
    clock = FakeClock()
    hot = ThermalGuard(readings([60] * 7 + [95]), poll_s=0, sleep=clock.sleep, clock=clock)
    model, loss, collate = setup()
    with pytest.raises(StopRequested, match="reached the hard limit 90 °C: training stopped at step 7 of 12"):
        fit(model, loss, FixedBatchSampler(32, 4, seed=0), collate, cfg, ctx, thermal=hot)
    assert ctx.checkpoint_path.is_file()

    model, loss, collate = setup()  # a fresh process starts from scratch like this, with a fresh context
    ctx = StageContext(
        key="t" * 12, out_dir=tmp_path / "o", work_dir=tmp_path / "w", cache_root=tmp_path / "c", seed=0, plugins=None
    )
    cool = ThermalGuard(lambda: 50.0, poll_s=0)
    res = fit(model, loss, FixedBatchSampler(32, 4, seed=0), collate, cfg, ctx, thermal=cool)
    assert res.steps_done == 12 and "resumed training run 'train' at step 7 of 12" in ctx.messages
    for k, v in model.state_dict().items():
        assert torch.equal(v, expected[k])
