"""The leaderboard of a study at full SUPERB size: ten tasks at their test sets' sizes (PR and ASR 2,620
utterances, KS 3,081, QbE 555 queries, SID 8,251, ASV 37,720 trials of 40 speakers, SD 3,000 recordings,
ER 5,531 utterances in 5 folds, IC 3,793, SF 676), six models × three seeds with SUPERB scores against
the measured FBank. Writes the store once, then times building the leaderboard (default resampling:
2,000 bootstrap draws, 5,000 permutations) against the same build with ASV's draws by speaker expanded to
every trial's weight (the way before :meth:`RocLayout.eer_by_cluster`), checks that both give the same
tables, and a build that parses every per-item file against one that reads their binary copies
(:mod:`harness.report.item_columns`); then reads the per-item files with ``orjson`` and ``json`` (where ``orjson``
is installed); with ``--top N`` it profiles one more build.

    .venv/bin/python benchmarks/bench_leaderboard_scale.py [--out /tmp/lbscale] [--seeds 3] [--scale 1.0] [--top 12]

``--scale`` shrinks every test set (0.1: a tenth) for a quick look.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import pstats
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.core.store import MetricRow, StageRow, Store  # noqa: E402
from harness.evaluation import scoring  # noqa: E402
from harness.evaluation.twv import query_gains  # noqa: E402
from harness.report import item_columns, json_lines  # noqa: E402
from harness.report import leaderboard as lbm  # noqa: E402
from harness.report.item_stats import Resampled, TrialStats, from_items  # noqa: E402
from harness.report.json_lines import read_json_lines  # noqa: E402

#: task -> (test items, metrics with their directions)
TASKS = {
    "pr": (2620, {"per": "lower"}), "asr": (2620, {"wer": "lower"}), "ks": (3081, {"acc": "higher"}),
    "qbe": (555, {"mtwv": "higher"}), "sid": (8251, {"acc": "higher"}), "asv": (37720, {"eer": "lower"}),
    "sd": (3000, {"der": "lower"}), "er": (5531, {"acc": "higher"}), "ic": (3793, {"acc": "higher"}),
    "sf": (676, {"f1": "higher", "cer": "lower"}),
}
MODELS = [("hubert", "pre-trained", 0.0), ("hubert", "pr · speech_ft alpha=0.25", 0.3),
          ("hubert", "pr · speech_ft alpha=1.0", -0.2), ("hubert", "sid · speech_ft alpha=0.25", 0.2),
          ("hubert", "sid · speech_ft alpha=1.0", -0.3), ("fbank", "pre-trained", -1.5)]
QBE_DOCUMENTS = 2000
ASV_SPEAKERS = 40


def _items(task: str, metric: str, n: int, quality: float, rng: np.random.Generator) -> list:
    """Per-item stats of one metric in its stored form; ``quality`` shifts the model's level."""
    if task == "asv":
        targets = np.arange(n) % 2 == 0
        scores = rng.normal(size=n) + (2.5 + quality) * targets
        return [{"target": int(t), "score": float(s), "group": f"id{i % ASV_SPEAKERS:05d}"}
                for i, (t, s) in enumerate(zip(targets, scores, strict=True))]
    if task == "qbe":
        truth = np.zeros((n, QBE_DOCUMENTS), dtype=bool)
        for q in range(n):
            truth[q, rng.choice(QBE_DOCUMENTS, size=1 + q % 4, replace=False)] = True
        _, gains = query_gains(rng.normal(size=truth.shape) + (3.0 + quality) * truth, truth)
        return [{"gains": g.tolist()} for g in gains]
    error = metric in ("per", "wer", "der", "cer")
    p = float(np.clip((0.25 if error else 0.75) - (quality if error else -quality) * 0.03, 0.01, 0.99))
    lengths = rng.integers(5, 40, size=n) if metric in ("per", "wer", "der", "cer", "f1") else np.ones(n, int)
    return [[float(rng.binomial(int(k), p)), float(k)] for k in lengths]


def write_store(out: Path, seeds: int, scale: float) -> None:
    rng = np.random.default_rng(0)
    started = 1.0e9
    with Store(out) as store:
        for seed in range(seeds):
            evals: dict[tuple[str, str], dict[str, str]] = {}
            values: dict[tuple[str, str], dict[str, float]] = {}
            model_labels: dict[tuple[str, str], dict] = {}
            for upstream, model, quality in MODELS:
                labels = {"upstream": upstream, "model": model, "finetune": "none" if model == "pre-trained" else
                          model.split(" ")[0], "merge": "" if model == "pre-trained" else "speech_ft",
                          "alpha": 0.0 if model == "pre-trained" else float(model.rsplit("=", 1)[1]),
                          "merge_params": None if model == "pre-trained" else {"alpha": float(model.rsplit("=", 1)[1])},
                          "seed": seed}
                for task, (n, metrics) in TASKS.items():
                    n = max(12, int(n * scale)) if task != "asv" else max(ASV_SPEAKERS * 4, int(n * scale))
                    key = hashlib.sha256(f"e{seed}{upstream}{model}{task}".encode()).hexdigest()[:16]
                    per_metric = {m: _items(task, m, n, quality + 0.1 * seed, rng) for m in metrics}
                    folds = [i % 5 for i in range(n)] if task == "er" else None
                    lines = []
                    for i in range(len(next(iter(per_metric.values())))):
                        line = {"id": f"{task}{i:06d}", "stats": {m: v[i] for m, v in per_metric.items()}}
                        if folds is not None:
                            line["fold"] = folds[i]
                        lines.append(line)
                    stored = {}
                    for m in metrics:
                        res = from_items({seed: lines}, m)
                        if folds is None:
                            stored[m] = res.value
                        else:
                            stored[m] = float(np.mean([res.subset([i for i in res.ids if int(i[len(task):]) % 5 == f],
                                                                  res.seeds).value for f in range(5)]))
                    folder = out / key
                    folder.mkdir(parents=True, exist_ok=True)
                    (folder / "items.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
                    (folder / "metrics.json").write_text(json.dumps({"task": task, "metrics": stored,
                                                                     "directions": metrics}))
                    started += 1
                    store.record_stage(StageRow(key, "evaluate", task, task, {}, {"model": model, "corpus": task},
                                                {**labels, "downstream": task, "task": task}, "done", started,
                                                started + 1, 1.0, "bench", None, {}, None, []))
                    store.record_metrics(key, [MetricRow(key, task, m, v, metrics[m], len(lines),
                                                         f"{key}/items.jsonl") for m, v in stored.items()])
                    evals.setdefault((upstream, model), {})[task] = key
                    values.setdefault((upstream, model), {}).update({f"{task}.{m}": v for m, v in stored.items()})
                model_labels[(upstream, model)] = labels
            directions = {f"{t}.{m}": d for t, (_, ms) in TASKS.items() for m, d in ms.items()}
            fbank = values[("fbank", "pre-trained")]
            table = scoring.reference_table("measured", fbank, directions)
            for (upstream, model), keys in evals.items():
                labels = model_labels[(upstream, model)]
                score = scoring.superb_score(values[(upstream, model)], table, strict=False).score
                key = hashlib.sha256(f"s{seed}{upstream}{model}".encode()).hexdigest()[:16]
                inputs = {f"eval.{t}": k for t, k in keys.items()}
                inputs.update({f"reference.{t}": k for t, k in evals[("fbank", "pre-trained")].items()})
                started += 1
                store.record_stage(StageRow(key, "score", "superb", "score", {"reference": "measured",
                                                                               "tasks": {t: t for t in TASKS}},
                                            inputs, labels, "done", started, started + 1, 1.0, "bench", None, {},
                                            None, []))
                store.record_metrics(key, [MetricRow(key, "superb", "score", float(score), "higher", None, None)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/lbscale"))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--top", type=int, default=0, help="then profile a second build: the N functions that "
                                                                "took the most time of their own")
    args = parser.parse_args()
    if not (args.out / "results.sqlite").is_file():
        t0 = time.perf_counter()
        write_store(args.out, args.seeds, args.scale)
        print(f"wrote the store in {time.perf_counter() - t0:.1f} s: {args.out}")
    lbm.build(args.out)  # imports, first use of every code path
    copies = lambda: sorted(args.out.glob(f"*/items.jsonl{item_columns.SUFFIX}"))  # noqa: E731
    for copy in copies():
        copy.unlink()
    t0 = time.perf_counter()
    parsed = lbm.build(args.out)  # parses every items.jsonl and writes its binary copy
    from_files = time.perf_counter() - t0
    t0 = time.perf_counter()
    board = lbm.build(args.out)
    seconds = time.perf_counter() - t0
    cells = sum(len(r.cells) for r in board.rows)
    size = sum(f.stat().st_size for f in copies()) / 1e6
    print(f"leaderboard: {len(board.rows)} models × {len(board.columns)} columns ({cells} cells) in {seconds:.1f} s "
          f"from the per-item files' binary copies ({size:.0f} MB), {from_files:.1f} s parsing the files "
          f"({from_files / seconds:.2f}x); identical tables: {lbm.render(parsed, 'md') == lbm.render(board, 'md')}")
    for note in board.notes:
        print(f"note: {note}")
    # the baseline: the EER of draws by enrolment speaker from every trial's expanded weight
    by_cluster = TrialStats.resampled_by_cluster
    TrialStats.resampled_by_cluster = Resampled.resampled_by_cluster  # type: ignore[method-assign]
    try:
        t0 = time.perf_counter()
        expanded = lbm.build(args.out)
        baseline = time.perf_counter() - t0
    finally:
        TrialStats.resampled_by_cluster = by_cluster  # type: ignore[method-assign]
    same = lbm.render(expanded, "md") == lbm.render(board, "md")
    print(f"with every trial's weight expanded from its speaker's count (the baseline): {baseline:.1f} s, "
          f"{baseline / seconds:.2f}x; identical tables: {same}")
    files = sorted(args.out.glob("*/items.jsonl"))
    fast = json_lines.orjson
    if fast is not None:  # the per-item files read with orjson (installed) and with json
        timed = {}
        try:
            for name, module in (("orjson", fast), ("json", None)):
                json_lines.orjson = module
                t0 = time.perf_counter()
                for f in files:
                    read_json_lines(f)
                timed[name] = time.perf_counter() - t0
        finally:
            json_lines.orjson = fast
        size = sum(f.stat().st_size for f in files) / 1e6
        print(f"reading the {len(files)} per-item files ({size:.0f} MB): json {timed['json']:.2f} s, orjson "
              f"{timed['orjson']:.2f} s ({timed['json'] / timed['orjson']:.1f}x)")
    if args.top:  # where the time went: the same build again, profiled
        profile = cProfile.Profile()
        profile.runcall(lbm.build, args.out)
        pstats.Stats(profile).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
