"""Stages that share the CPU cores: the fine-tuning loop's rate (tiny HuBERT, audio seconds a second)
in one process alone and in several processes at once, each on all the cores as ``harness run
--jobs N`` runs them, with OpenMP's default waits (idle threads spin) and with passive ones (they
sleep; what ``--jobs`` gives its workers, :func:`harness.core.threads.passive_openmp_waits`).

    .venv/bin/python benchmarks/bench_shared_cores.py --processes 2 --repeats 3

Each setting runs in fresh processes, since the OpenMP runtime reads its wait policy when it loads.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_upstream_speed import _batches, _finetune_rate, _model  # noqa: E402

from harness.core.threads import OPENMP_WAIT_SETTINGS, available_cores  # noqa: E402

_POLICIES = {"spinning (default)": {}, "passive": {"OMP_WAIT_POLICY": "PASSIVE"}}


def _child(seconds_per_batch: float, steps: int) -> None:
    torch.manual_seed(0)
    model = _model(torch.device("cpu"), "tiny")
    rate = _finetune_rate(model, _batches(seconds_per_batch, steps), torch.device("cpu"), bf16=False)
    print(f"{rate:.3f}")


def _rates(processes: int, env: dict[str, str], seconds_per_batch: float, steps: int) -> list[float]:
    """Each process's rate when ``processes`` of them train at once."""
    base = {k: v for k, v in os.environ.items() if k not in OPENMP_WAIT_SETTINGS}
    command = [sys.executable, __file__, "--child", "--seconds", str(seconds_per_batch), "--steps", str(steps)]
    running = [subprocess.Popen(command, env={**base, **env}, stdout=subprocess.PIPE, text=True)
               for _ in range(processes)]
    return [float(p.communicate()[0].split()[-1]) for p in running]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2, help="processes at once (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each setting (median; default 3)")
    parser.add_argument("--seconds", type=float, default=8.0, help="audio seconds per batch (default 8)")
    parser.add_argument("--steps", type=int, default=8, help="batches per pass (default 8)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.seconds, args.steps)
        return
    print(f"{available_cores()} core(s); tiny HuBERT training loop, {args.seconds:g}-second batches; "
          f"median of {args.repeats} run(s); audio seconds a second per process")
    table: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.repeats):  # settings interleaved, so drifting load touches them alike
        for name, env in _POLICIES.items():
            for count in (1, args.processes):
                rates = _rates(count, env, args.seconds, args.steps)
                table.setdefault((name, count), []).append(statistics.mean(rates))
    alone = statistics.median(table[("spinning (default)", 1)])
    print(f"{'waits':<20}{'alone':>10}{f'{args.processes} at once':>14}{'at once / default alone':>26}")
    for name in _POLICIES:
        one, many = (statistics.median(table[(name, n)]) for n in (1, args.processes))
        print(f"{name:<20}{one:>10.1f}{many:>14.1f}{many / alone:>26.2f}")


if __name__ == "__main__":
    main()
