"""Evaluating one upstream on PR, SID, ER and SF: hidden-state cache against upstream-in-the-loop.

Both ways train the same probes with the same seed and settings in this run; the cached way runs
the upstream once per utterance (pooled means for SID/ER, float16 frames for PR/SF), the other runs
it on every training and dev batch, as s3prl does. Prints per task the wall time of each way, the
ratio, the audio seconds each way sent through the upstream, and whether the metrics are equal.

    .venv/bin/python benchmarks/bench_downstream_cache.py [--corpus DIR] [--upstream hubert] [--steps 40]

Without ``--corpus`` the embedded synthetic corpus (120 utterances) is prepared in a temporary folder.
``--steps`` scales both ways alike; the ratio grows with it (SUPERB trains 30,000-200,000 steps).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.core.manifest import PreparedCorpus  # noqa: E402
from harness.core.params import validate_params  # noqa: E402
from harness.core.registry import PluginManager  # noqa: E402
from harness.core.stage import StageContext  # noqa: E402

TASKS = ("pr", "sid", "er", "sf")


def prepare_corpus(root: Path, n: int) -> Path:
    from plugins.corpora.synthetic import SyntheticCorpus, SyntheticParams

    out = root / "corpus"
    out.mkdir(parents=True)
    params = SyntheticParams(n_utterances=n, n_speakers=8, n_unseen_speakers=2, n_folds=4)
    ctx = StageContext("bench-corpus", out, root / "w", root / "c", 0, PluginManager(entry_points=False))
    SyntheticCorpus().prepare(params, out, ctx)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path)
    ap.add_argument("--utterances", type=int, default=120)
    ap.add_argument("--upstream", default="hubert")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--tasks", default=",".join(TASKS))
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="bench_cache_"))
    corpus_dir = args.corpus or prepare_corpus(tmp, args.utterances)
    corpus = PreparedCorpus(corpus_dir)
    pm = PluginManager()
    up_plugin = pm.create("upstream", args.upstream)
    up_params = validate_params(up_plugin.Params, {"preset": args.preset} if args.upstream != "fbank" else {}, "u")
    print(f"corpus {corpus_dir} ({sum(len(corpus.utterances(s)) for s in corpus.splits)} utterances), "
          f"upstream {args.upstream} {args.preset}, {args.steps} steps per probe, torch threads "
          f"{torch.get_num_threads()}")
    overrides = {"steps": args.steps, "eval_every": max(1, args.steps // 2)}
    rows = []
    totals = {"cached": 0.0, "in the loop": 0.0}
    cache_ctx = StageContext("bench-cached", tmp / "o1", tmp / "w1", tmp / "cache", 0, pm,
                             input_keys={"model": "m", "corpus": "c"})
    for name in args.tasks.split(","):
        plugin = pm.create("downstream", name)
        extra = {"max_folds": 1} if name == "er" else {}
        out = {}
        for mode, cache in (("cached", "auto"), ("in the loop", "off")):
            model = up_plugin.build(up_params, 0)
            params = validate_params(plugin.Params, {**overrides, **extra, "cache": cache}, name)
            ctx = cache_ctx if mode == "cached" else StageContext(
                f"bench-loop-{name}", tmp / "o2", tmp / f"w2{name}", tmp / "cache2", 0, pm)
            start = time.perf_counter()
            res = plugin.evaluate(model, corpus, params, ctx)
            out[mode] = (time.perf_counter() - start, res)
            totals[mode] += out[mode][0]
        (t_c, r_c), (t_l, r_l) = out["cached"], out["in the loop"]
        rows.append((name, t_c, t_l, r_c, r_l))
        print(
            f"{name:<4} cached {t_c:7.1f} s  in the loop {t_l:7.1f} s  ratio {t_l / t_c:6.1f}x  "
            f"upstream audio {r_c.extra['upstream_audio_seconds']:7.0f} s vs "
            f"{r_l.extra['upstream_audio_seconds']:7.0f} s  "
            f"metrics equal: {r_c.metrics == r_l.metrics}  {r_c.metrics}",
            flush=True,
        )
    print(
        f"all  cached {totals['cached']:7.1f} s  in the loop {totals['in the loop']:7.1f} s  "
        f"ratio {totals['in the loop'] / totals['cached']:6.1f}x  (the cached column includes the one upstream pass)"
    )


if __name__ == "__main__":
    main()
