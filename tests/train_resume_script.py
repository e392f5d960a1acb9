"""A small training run used by test_train_resume.py; run as a script it is killed at step 17."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import numpy as np
import torch

from harness.core.stage import StageContext
from harness.data.batching import DynamicBatchSampler
from harness.training.loop import TrainConfig, fit


def train(work: Path, kill_at: int | None = None) -> tuple[dict[str, torch.Tensor], list[str]]:
    torch.manual_seed(0)
    np.random.seed(0)
    g = torch.Generator().manual_seed(1)
    lengths = torch.randint(3, 12, (40,), generator=g).tolist()
    data = [torch.randn(n, 4, generator=g) for n in lengths]
    targets = torch.randn(40, 2, generator=g)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Dropout(0.3), torch.nn.GELU(), torch.nn.Linear(16, 2))

    def collate(idx):
        # randomness from every global RNG the checkpoint restores
        x = torch.nn.utils.rnn.pad_sequence([data[i] for i in idx], batch_first=True)
        x = x + 0.01 * torch.randn_like(x) + float(np.random.uniform(-0.01, 0.01))
        return x, torch.tensor([lengths[i] for i in idx]), targets[idx]

    def loss_fn(batch):
        x, n, y = batch
        mask = (torch.arange(x.shape[1])[None] < n[:, None]).float()[..., None]
        return torch.nn.functional.mse_loss((model(x) * mask).sum(1) / n[:, None], y)

    def evaluate():
        return {"loss": float(loss_fn(collate(list(range(10)))))}

    def before_step(step):
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    ctx = StageContext(
        key="resume-test", out_dir=work / "out", work_dir=work, cache_root=work / "cache", seed=0, plugins=None
    )
    cfg = TrainConfig(
        steps=30, lr=3e-3, schedule="speech_ft", accumulate=2, weight_decay=0.01, eval_every=10, checkpoint_every=5
    )
    sampler = DynamicBatchSampler(lengths, max_total=40, seed=0)
    fit(model, loss_fn, sampler, collate, cfg, ctx, evaluate, ("loss", "lower"), before_step)
    return {k: v.clone() for k, v in model.state_dict().items()}, ctx.messages


if __name__ == "__main__":
    train(Path(sys.argv[1]), kill_at=17)
