"""ABX pairs aligned all at once against block by block: wall time, peak memory, equal scores.

Each mode runs in its own child process (so that each peak is its own) on the same random clustered
frames (``--files`` files of ``--dim`` dimensions, 8 speakers), all four conditions, angular.

    .venv/bin/python benchmarks/bench_abx_blocks.py [--files 700 --dim 32]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child(files: int, dim: int, mode: str) -> None:
    sys.path.insert(0, str(ROOT))
    from harness.evaluation.abx import abx, score
    from tests.downstream_helpers import clustered_features

    feats, items = clustered_features(Path(tempfile.mkdtemp()), files, dim, seed=0, n_phones=8, n_speakers=8)
    score.TABLE_MAX_PAIRS = 1 << 40 if mode == "at once" else 0
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    scores = abx(feats, items, 0.02)
    seconds = time.perf_counter() - start
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024  # kB -> MB
    print(json.dumps({"seconds": seconds, "peak_mb": grown, "items": len(items), "scores": [s.score for s in scores]}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=700)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.files, args.dim, args.child)
        return
    runs = {}
    for mode in ("at once", "block by block"):
        cmd = [sys.executable, __file__, "--files", str(args.files), "--dim", str(args.dim), "--child", mode]
        runs[mode] = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    once, blocks = runs["at once"], runs["block by block"]
    print(f"{once['items']} tokens of {args.files} files, {args.dim} dims, 8 speakers, 4 conditions")
    for mode, r in runs.items():
        print(f"{mode:<15} {r['seconds']:7.1f} s   peak memory growth {r['peak_mb']:7.0f} MB")
    gap = max(abs(a - b) for a, b in zip(once["scores"], blocks["scores"], strict=True))
    print(f"block by block: {blocks['seconds'] / once['seconds']:.2f}x the time, "
          f"{blocks['peak_mb'] / once['peak_mb']:.2f}x the memory; largest score difference {gap:.1e}")


if __name__ == "__main__":
    main()
