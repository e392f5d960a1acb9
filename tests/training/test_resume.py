"""Random state: a training run killed with SIGKILL resumes from its checkpoint to bit-identical final weights
(CPU), and the seeding helpers reproduce and restore every generator."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from harness.core.seeding import rng_preserved, rng_state, seed_everything, seeded, set_rng_state
from tests.train_resume_script import train

ROOT = Path(__file__).resolve().parents[2]


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
    # the training curve too: what the killed run wrote after its last checkpoint is not repeated
    curve = (tmp_path / "work" / "out" / "curves" / "train.jsonl").read_text()
    assert curve == (tmp_path / "full" / "out" / "curves" / "train.jsonl").read_text()
    assert [json.loads(line)["step"] for line in curve.splitlines()].count(16) == 1


def test_seeding_is_reproducible_and_rng_preserved_puts_every_generator_back():
    saved = rng_state()
    try:
        seed_everything(2**32 + 5)  # NumPy takes the seed modulo 2**32
        first = (random.random(), float(np.random.rand()), float(torch.rand(())))
        seed_everything(2**32 + 5)
        with rng_preserved():
            random.random(), np.random.rand(), torch.rand(3)
        assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == first
        with seeded(7):
            preset = torch.rand(4)
        with seeded(7):
            assert torch.equal(torch.rand(4), preset)
    finally:
        set_rng_state(saved)
