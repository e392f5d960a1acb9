"""A training run killed with SIGKILL resumes from its checkpoint to bit-identical final weights (CPU)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import torch
from safetensors.torch import load_file

SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np, torch
    from safetensors.torch import save_file
    from harness.batching import DynamicBatchSampler
    from harness.stage import StageContext
    from harness.train import TrainConfig, fit

    from pathlib import Path

    mode, root = sys.argv[1], Path(sys.argv[2])


    def train(work, kill_at=None):
        torch.manual_seed(0)
        np.random.seed(0)
        g = torch.Generator().manual_seed(1)
        lengths = torch.randint(3, 12, (40,), generator=g).tolist()
        data = [torch.randn(n, 4, generator=g) for n in lengths]
        targets = torch.randn(40, 2, generator=g)
        model = torch.nn.Sequential(
            torch.nn.Linear(4, 16), torch.nn.Dropout(0.3), torch.nn.GELU(), torch.nn.Linear(16, 2)
        )

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

        ctx = StageContext(key="resume-test", out_dir=work / "out", work_dir=work, cache_root=work / "cache",
                           seed=0, plugins=None)
        cfg = TrainConfig(steps=30, lr=3e-3, schedule="speech_ft", accumulate=2, weight_decay=0.01,
                          eval_every=10, checkpoint_every=5)
        sampler = DynamicBatchSampler(lengths, max_total=40, seed=0)
        fit(model, loss_fn, sampler, collate, cfg, ctx, evaluate, ("loss", "lower"), before_step)
        print("\\n".join(ctx.messages))
        return {k: v.contiguous() for k, v in model.state_dict().items()}


    if mode == "kill":
        train(root / "work", kill_at=17)
    else:
        save_file(train(root / "work"), root / "resumed.safetensors")
        save_file(train(root / "full"), root / "full.safetensors")
    """
)


def run(tmp_path, mode: str) -> subprocess.CompletedProcess:
    script = tmp_path / "train_script.py"
    script.write_text(SCRIPT)
    return subprocess.run([sys.executable, str(script), mode, str(tmp_path)], capture_output=True, text=True,
                          timeout=120)


def test_sigkill_then_resume_gives_bit_identical_weights(tmp_path):
    killed = run(tmp_path, "kill")
    assert killed.returncode == -9, killed.stderr
    assert (tmp_path / "work" / "checkpoint.pt").is_file()
    resumed = run(tmp_path, "resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed training run 'train' at step 15 of 30" in resumed.stdout
    a, b = load_file(tmp_path / "resumed.safetensors"), load_file(tmp_path / "full.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
