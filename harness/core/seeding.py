"""The one place randomness is seeded, and the global generators saved and restored.

- :func:`seed_everything`: every global generator (Python, NumPy, torch) from a stage's seed, once
  before the stage runs.
- :func:`seed_torch`: torch's global generator alone (a probe head's initialisation).
- :func:`seeded`: the torch CPU generator seeded for a block (a preset's random initialisation),
  the global state left as it was.
- :func:`rng_state`, :func:`set_rng_state` and :func:`rng_preserved`: every global generator's state
  (torch, CUDA, NumPy, Python) as tensors and numbers, for exact resume and for side computations
  (dev evaluation) that must not shift the training draws.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

__all__ = ["rng_preserved", "rng_state", "seed_everything", "seed_torch", "seeded", "set_rng_state"]


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's (``seed`` mod 2³²) and torch's global generators, in that order."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def seed_torch(seed: int) -> None:
    """Seed torch's global generator alone (a probe head's initialisation; other generators untouched)."""
    torch.manual_seed(seed)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the body with the torch CPU generator seeded, leaving the global generator as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def rng_state() -> dict[str, Any]:
    """Every global RNG state, as tensors and numbers (loadable with ``weights_only``)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "gauss": float(np_state[4]),
        },
        "python": {"version": py_state[0], "state": torch.tensor(py_state[1], dtype=torch.int64)},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the global generators from :func:`rng_state`'s result."""
    torch.set_rng_state(state["torch"])
    npst = state["numpy"]
    np.random.set_state(
        ("MT19937", npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"], npst["gauss"])
    )
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["state"].tolist()), None))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextlib.contextmanager
def rng_preserved() -> Iterator[None]:
    """Run the body and then put every global generator back as it was before."""
    saved = rng_state()
    try:
        yield
    finally:
        set_rng_state(saved)
