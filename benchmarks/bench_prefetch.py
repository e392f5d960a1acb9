"""Batch reading ahead: audio seconds a second that the fine-tuning loop's prefetcher delivers from
FLAC files (decode, pad; no model), on 1, 2, ... threads, against reading in the loop itself.

This is the ceiling on a fine-tuning stage's rate from reading alone: a GPU that trains faster than
this waits for its batches. The files are written to a temporary folder (synthetic tones with
noise, 3–8 s) and read without the in-memory cache, as a corpus over two hours would be.

    .venv/bin/python benchmarks/bench_prefetch.py --files 200 --batch-seconds 80
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from harness.core.threads import available_cores
from harness.data.batching import DynamicBatchSampler
from harness.data.waveforms import WaveformSet
from harness.training.loop import _Prefetcher


def write_corpus(folder: Path, files: int, seed: int = 0) -> list[dict]:
    """``files`` FLAC files of 3–8 s at 16 kHz and their manifest rows."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(files):
        n = int(rng.uniform(3.0, 8.0) * 16000)
        t = np.arange(n) / 16000
        wav = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 300) * t) + 0.05 * rng.standard_normal(n)
        path = folder / f"{i:05d}.flac"
        sf.write(path, wav.astype(np.float32), 16000)
        rows.append({"id": f"{i:05d}", "path": str(path), "duration": n / 16000})
    return rows


def read_rate(rows: list[dict], batch_seconds: float, depth: int | None) -> float:
    """Audio seconds a second over one epoch of batches: read in the loop (``depth`` None) or taken
    from a prefetcher collating ``depth`` steps ahead on ``depth`` threads."""
    data = WaveformSet(rows, cache_hours=0.0)
    sampler = DynamicBatchSampler(data.lengths, batch_seconds, seed=0)
    steps = len(sampler)
    audio = sum(data.lengths)

    def forever():
        while True:
            yield from sampler

    batches = forever()
    start = time.perf_counter()
    if depth is None:
        for _ in range(steps):
            data.collate(next(batches))
    else:
        prefetcher = _Prefetcher(batches, data.collate, sampler, per_step=1, pin=False, depth=depth)
        try:
            for _ in range(steps):
                [(_, future)] = prefetcher.take()
                future.result()
        finally:
            prefetcher.close()
    return audio / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--batch-seconds", type=float, default=80.0)
    parser.add_argument("--max-threads", type=int, default=None, help="default: the machine's cores, at most 8")
    args = parser.parse_args(argv)
    cores = available_cores()
    with tempfile.TemporaryDirectory() as tmp:
        rows = write_corpus(Path(tmp), args.files)
        read_rate(rows, args.batch_seconds, None)  # warm the page cache: every run reads from memory
        total = sum(r["duration"] for r in rows)
        print(f"{args.files} FLAC files, {total:.0f} s of audio, batches of <= {args.batch_seconds:g} s; "
              f"{cores} cores")
        base = read_rate(rows, args.batch_seconds, None)
        print(f"read in the loop            {base:8.0f} audio s/s")
        for depth in range(1, min(args.max_threads or min(cores, 8), 16) + 1):
            rate = read_rate(rows, args.batch_seconds, depth)
            print(f"prefetch, {depth} thread(s)       {rate:8.0f} audio s/s   {rate / base:.2f}x")


if __name__ == "__main__":
    main()
