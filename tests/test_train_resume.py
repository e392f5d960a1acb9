"""A training run killed with SIGKILL resumes from its checkpoint to bit-identical final weights (CPU)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from harness.training.loop import rng_state, set_rng_state
from tests.train_resume_script import train

ROOT = Path(__file__).resolve().parent.parent


def test_sigkill_then_resume_gives_bit_identical_weights(tmp_path):
    killed = subprocess.run(
        [sys.executable, "-m", "tests.train_resume_script", str(tmp_path / "work")],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr
    assert (tmp_path / "work" / "checkpoint.pt").is_file()
    saved = rng_state()
    try:
        resumed, messages = train(tmp_path / "work")
        full, _ = train(tmp_path / "full")
    finally:
        set_rng_state(saved)
    assert "resumed training run 'train' at step 15 of 30" in messages
    assert resumed.keys() == full.keys()
    for k in resumed:
        assert torch.equal(resumed[k], full[k]), k
