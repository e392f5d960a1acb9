"""QbE matching: every document of a layer at once (padded groups, the stage's way) against one
document at a time, on the same random features; prints both wall times, their ratio and the largest
difference of the costs (they must agree), on the CPU and on CUDA when there is a GPU.

    .venv/bin/python benchmarks/bench_qbe.py [--queries 20 --documents 400 --dim 256]

Queries are 40-100 frames and documents 100-500 (QUESST 2014's queries are about 1 s and its
documents about 6 s at 50 frames per second).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.evaluation.term_detection import Documents, match_costs  # noqa: E402


def one_at_a_time(queries: list[torch.Tensor], docs: list[torch.Tensor], device: str) -> np.ndarray:
    units = [F.normalize(d.to(device), dim=1)[None] for d in docs]
    out = np.empty((len(queries), len(docs)))
    for i, q in enumerate(queries):
        qn = F.normalize(q.to(device), dim=1)
        for j, d in enumerate(units):
            out[i, j] = match_costs(qn, d, torch.tensor([d.shape[1]], device=device)).item()
    return out


def grouped(queries: list[torch.Tensor], docs: list[torch.Tensor], device: str) -> np.ndarray:
    documents = Documents(docs, device)
    return np.stack([documents.costs(q).numpy() for q in queries])


def timed(fn, *args) -> tuple[np.ndarray, float]:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    out = fn(*args)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--documents", type=int, default=400)
    parser.add_argument("--dim", type=int, default=256)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    queries = [torch.from_numpy(rng.normal(size=(int(n), args.dim)).astype(np.float32))
               for n in rng.integers(40, 100, size=args.queries)]
    docs = [torch.from_numpy(rng.normal(size=(int(n), args.dim)).astype(np.float32))
            for n in rng.integers(100, 500, size=args.documents)]
    print(f"{args.queries} queries × {args.documents} documents, {args.dim} dimensions, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        slow, t_slow = timed(one_at_a_time, queries, docs, device)
        fast, t_fast = timed(grouped, queries, docs, device)
        print(f"{device}: one document at a time {t_slow:.2f} s, grouped {t_fast:.2f} s "
              f"({t_slow / t_fast:.1f}×), largest cost difference {np.abs(slow - fast).max():.2e}")


if __name__ == "__main__":
    main()
