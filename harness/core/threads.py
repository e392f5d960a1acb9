"""Intra-op thread count for blocks of many small tensor operations."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` intra-op threads (None: unchanged), restoring the count after.

    Many short operations (a small probe head's training, the batched DTW's diagonal steps) run
    faster on one thread: they are too short to amortise waking a thread pool, and on a busy
    machine every parallel operation waits for all its threads. Measured on the 2-core machine
    under load: a layer norm of 120×96 took 5 ms on two threads and 0.07 ms on one; the DTW of
    20,000 pairs of 8×8 frames 1.1 s on two threads and 0.06 s on one.
    """
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


#: Environment variables that set how OpenMP threads wait (the standard one, GNU's, LLVM's and Intel's)
OPENMP_WAIT_SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


@contextlib.contextmanager
def passive_openmp_waits() -> Iterator[None]:
    """Processes started in the block make their OpenMP threads sleep when idle instead of spinning.

    For processes sharing the cores (stages at once, each on all of them). By default an idle OpenMP
    thread spins for a while before sleeping, which pays when the cores are its own; when two
    processes each run a team as large as the machine, the spinning threads hold the cores the other
    team's working threads wait for. On 2 cores, two tiny HuBERT fine-tuning loops side by side ran
    at 7.9 audio seconds a second each with spinning and 107.7 with passive waits; one alone at 145.8
    and 101.0 (``benchmarks/bench_shared_cores.py``). The runtime reads the setting when it loads, so
    it goes into the environment the processes inherit; the driver's own is restored after, and a
    user's own setting of any of :data:`OPENMP_WAIT_SETTINGS` is left alone.
    """
    if any(name in os.environ for name in OPENMP_WAIT_SETTINGS):
        yield
        return
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        yield
    finally:
        os.environ.pop("OMP_WAIT_POLICY", None)
