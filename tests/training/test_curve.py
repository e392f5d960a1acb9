"""The training curve of a run: loss and learning rate per step, dev metrics per evaluation, as JSON lines."""

from __future__ import annotations

import json

import torch

from harness.core.stage import StageContext
from harness.data.batching import FixedBatchSampler
from harness.training.loop import TrainConfig, fit, lr_factor


def test_the_curve_holds_every_step_and_each_dev_evaluation(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    x, y = torch.randn(16, 3), torch.randn(16, 1)
    losses = []

    def loss_fn(idx):
        if idx == [4]:  # one broken batch: its step is skipped and its loss recorded as null
            return torch.tensor(float("nan"), requires_grad=True)
        loss = torch.nn.functional.mse_loss(model(x[idx]), y[idx])
        losses.append(float(loss.detach()))
        return loss

    ctx = StageContext(key="k", out_dir=tmp_path / "out", work_dir=tmp_path / "work", cache_root=tmp_path / "c",
                       seed=0, plugins=None)
    cfg = TrainConfig(steps=8, lr=0.1, schedule="linear", eval_every=3, checkpoint_minutes=None)
    fit(model, loss_fn, FixedBatchSampler(16, 1, seed=0, shuffle=False), lambda idx: idx, cfg, ctx,
        evaluate=lambda: {"mse": 1.5}, primary=("mse", "lower"))
    lines = [json.loads(line) for line in (tmp_path / "out" / "curves" / "train.jsonl").read_text().splitlines()]
    train = [r for r in lines if "loss" in r]
    dev = [r for r in lines if "dev" in r]
    assert [r["step"] for r in train] == list(range(1, 9))
    assert [r["lr"] for r in train] == [0.1 * lr_factor("linear", s, 8) for s in range(8)]
    assert train[4]["loss"] is None
    assert [r["loss"] for r in train if r["loss"] is not None] == losses
    assert dev == [{"step": 3, "dev": {"mse": 1.5}}, {"step": 6, "dev": {"mse": 1.5}}, {"step": 8, "dev": {"mse": 1.5}}]
