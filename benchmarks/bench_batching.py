"""Dynamic (length-bucketed, capped by padded seconds) against fixed-size batches on the embedded corpus.

Usage: python benchmarks/bench_batching.py [CORPUS_DIR] [--upstream hubert --preset tiny] [--max-seconds 24]

Both samplers cover the train split once with the same number of batches (the fixed batch size is
the dynamic sampler's mean batch size), so they take the same number of optimizer steps per epoch;
the difference is padding. Prints each sampler's padding fraction and the training throughput
(utterances per CPU second of forward + backward through the upstream) and their ratio.
Without CORPUS_DIR a small synthetic corpus is prepared in a temporary folder first.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from harness.core.manifest import PreparedCorpus
from harness.core.registry import default_manager
from harness.core.stage import StageContext
from harness.data.batching import DynamicBatchSampler, FixedBatchSampler, padding_fraction
from harness.data.waveforms import WaveformSet


def prepare_synthetic(root: Path) -> Path:
    plugins = default_manager()
    plugin = plugins.create("corpus", "synthetic")
    params = plugin.Params(n_utterances=200, n_speakers=8, n_unseen_speakers=2)
    out = root / "corpus"
    out.mkdir(parents=True)
    ctx = StageContext(key="bench", out_dir=out, work_dir=root / "w", cache_root=root / "c", seed=0, plugins=plugins)
    plugin.prepare(params, out, ctx)
    return out


def epoch_throughput(model, data: WaveformSet, batches: list[list[int]]) -> float:
    """Utterances per CPU second (all threads of this process) of one epoch of forward + backward
    (no optimizer step: it costs the same for both). CPU time rather than wall time keeps the ratio
    meaningful on a machine shared with other work."""
    model.train()
    for indices in batches[:2]:  # warm-up
        out = model(*_inputs(data, indices))
        out.hidden_states[-1].float().pow(2).mean().backward()
    start = time.process_time()
    for indices in batches:
        out = model(*_inputs(data, indices))
        out.hidden_states[-1].float().pow(2).mean().backward()
    return sum(len(b) for b in batches) / (time.process_time() - start)


def _inputs(data: WaveformSet, indices: list[int]):
    b = data.collate(indices)
    return b.wavs, b.wav_lengths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path, nargs="?")
    parser.add_argument("--upstream", default="hubert")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--max-seconds", type=float, default=24.0, help="dynamic cap: padded seconds per batch")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.corpus or prepare_synthetic(Path(tmp))
        corpus = PreparedCorpus(root)
        data = WaveformSet(corpus.utterances("train"))
        for i in range(len(data)):
            data.wave(i)  # read once so that both runs time compute, not disk
        dynamic = list(DynamicBatchSampler(data.lengths, args.max_seconds, seed=0))
        size = max(1, round(len(data) / len(dynamic)))
        fixed = list(FixedBatchSampler(len(data), size, seed=0))
        plugins = default_manager()
        plugin = plugins.create("upstream", args.upstream)
        torch.manual_seed(0)
        model = plugin.build(plugin.Params(preset=args.preset), seed=0)
        model.set_layerdrop(0.0)
        rates = {}
        for name, batches in (("fixed", fixed), ("dynamic", dynamic)):
            rates[name] = epoch_throughput(model, data, batches)
        durations = sorted(data.lengths)
        print(
            f"train split: {len(data)} utterances, {sum(durations) / 60:.1f} min, "
            f"{durations[0]:.2f}-{durations[-1]:.2f} s; model {args.upstream}/{args.preset}, "
            f"torch threads {torch.get_num_threads()}"
        )
        print(f"{'sampler':<8} {'batches':>7} {'items/batch':>11} {'padding':>8} {'utt/cpu-s':>10}")
        for name, batches in (("fixed", fixed), ("dynamic", dynamic)):
            pad = padding_fraction(data.lengths, batches)
            print(
                f"{name:<8} {len(batches):>7} {len(data) / len(batches):>11.1f} {100 * pad:>7.1f}% "
                f"{rates[name]:>10.2f}"
            )
        print(f"throughput ratio dynamic / fixed: {rates['dynamic'] / rates['fixed']:.2f}x")


if __name__ == "__main__":
    main()
