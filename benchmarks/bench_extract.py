"""Feature extraction speed: length-sorted dynamic batches against fixed-size batches, same run.

For each preset, the same utterances (durations drawn like a read-speech corpus: 1-12 s, mean about
5 s) go through ``harness.models.inference.batched_forward`` twice:

- fixed: ``--batch-size`` utterances per batch in corpus order (the usual DataLoader baseline);
- dynamic: sorted by length and packed while ``items × longest`` stays within the mean padded
  batch of the fixed scheme, so both run about as many batches of about the same size.

The two schemes alternate over ``--repeats`` rounds and the best round of each counts, so a
machine whose load changes during the run favours neither.

Prints frames per second (valid output frames, i.e. what a cache stores), the share of each batch
that is padding, and the ratio dynamic / fixed. Example::

    .venv/bin/python benchmarks/bench_extract.py --upstream hubert --presets tiny,base
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from harness.core.params import validate_params
from harness.core.registry import default_manager
from harness.data.batching import padding_fraction
from harness.models.inference import batched_forward, fixed_batches, length_sorted_batches

SR = 16000


def utterances(n: int, seed: int) -> list[np.ndarray]:
    """Noisy harmonic signals with gamma-distributed durations clipped to 1-12 s."""
    rng = np.random.default_rng(seed)
    seconds = np.clip(rng.gamma(shape=4.0, scale=1.25, size=n), 1.0, 12.0)
    out = []
    for s in seconds:
        t = np.arange(int(s * SR)) / SR
        f0 = rng.uniform(90, 250)
        out.append((0.2 * np.sin(2 * np.pi * f0 * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32))
    return out


def timed(model, wavs, batches, device) -> tuple[float, int]:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    frames = sum(hidden[0].shape[0] for _, hidden in batched_forward(model, wavs, batches=batches, device=device))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", default="hubert")
    parser.add_argument("--presets", default="tiny,base")
    parser.add_argument("--n", type=int, default=48, help="utterances for tiny (base uses --n-base)")
    parser.add_argument("--n-base", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    device = torch.device(args.device)
    plugin_cls = default_manager().get("upstream", args.upstream).cls
    print(f"device {device} ({torch.get_num_threads()} CPU threads), upstream {args.upstream}, "
          f"fixed batch size {args.batch_size}")
    header = f"{'preset':<8}{'utts':>5}{'audio s':>9}  {'scheme':<8}{'batches':>8}{'padding':>9}{'frames/s':>11}"
    print(header)
    for preset in args.presets.split(","):
        params = validate_params(plugin_cls.Params, {"preset": preset}, where=args.upstream)
        model = plugin_cls().build(params, seed=0).to(device).eval()
        n = args.n if preset == "tiny" else args.n_base
        wavs = utterances(n, seed=1)
        lengths = [len(w) for w in wavs]
        fixed = fixed_batches(n, args.batch_size)
        padded = sum(len(b) * max(lengths[i] for i in b) for b in fixed)
        schemes = {"fixed": fixed, "dynamic": length_sorted_batches(lengths, padded / len(fixed) / SR)}
        list(batched_forward(model, wavs[:2], batches=[[0, 1]], device=device))  # warm-up
        speed = {name: 0.0 for name in schemes}
        for _ in range(args.repeats):
            for name, batches in schemes.items():
                seconds, frames = timed(model, wavs, batches, device)
                speed[name] = max(speed[name], frames / seconds)
        for name, batches in schemes.items():
            print(f"{preset:<8}{n:>5}{sum(lengths) / SR:>9.1f}  {name:<8}{len(batches):>8}"
                  f"{padding_fraction(lengths, batches):>9.1%}{speed[name]:>11.0f}")
        print(f"{preset:<8} dynamic / fixed = {speed['dynamic'] / speed['fixed']:.2f}x")


if __name__ == "__main__":
    main()
