"""A results store with known numbers, written the way the driver writes it, for the leaderboard tests."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.store import MetricRow, StageRow, Store

TASK_METRICS = {"pr": {"per": "lower"}, "sid": {"acc": "higher"}, "er": {"acc": "higher"},
                "sf": {"f1": "higher", "cer": "lower"},
                "abx": {"error": "lower", "within_error": "lower"}, "asv": {"eer": "lower"}, "qbe": {"mtwv": "higher"}}


def superb_measured(metrics: dict[str, float], fbank: dict[str, float], directions: dict[str, str]) -> float:
    """The SUPERB score against the measured FBank, as the score stage computes it."""
    from harness.evaluation import scoring

    table = scoring.reference_table("measured", fbank, directions)
    return float(scoring.superb_score(metrics, table, strict=False).score)


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def make_items(task: str, metric: str, quality: float, n: int, rng: np.random.Generator) -> list[list[float]]:
    """Per-item [num, den] whose ratio is about ``quality`` percent (the metric's own direction)."""
    q = quality / 100
    if task == "abx":
        return [[float(np.clip(rng.normal(q, 0.08), 0, 1)), 1.0] for _ in range(n)]
    if metric in ("per", "cer"):
        lengths = rng.integers(8, 30, n)
        return [[float(rng.binomial(int(L), q)), float(L)] for L in lengths]
    if metric == "f1":
        out = []
        for _ in range(n):
            tp = int(rng.integers(0, 4))
            fp_fn = int(rng.binomial(4, 1 - q))
            out.append([2.0 * tp, 2.0 * tp + fp_fn])
        return out
    return [[float(rng.random() < q), 1.0] for _ in range(n)]


@dataclass
class FakeRun:
    """Builds an output folder: evaluate stages with items and layer weights, score stages."""

    output: Path
    reference: str = "measured"
    n_items: int = 80
    store: Store = field(init=False)
    evals: dict[tuple, str] = field(default_factory=dict)  # (upstream, model, downstream, seed) -> key
    values: dict[tuple, float] = field(default_factory=dict)  # (upstream, model, downstream.metric, seed) -> value
    started: float = 1000.0

    def __post_init__(self) -> None:
        self.output.mkdir(parents=True, exist_ok=True)
        self.store = Store(self.output)

    def close(self) -> None:
        self.store.close()

    def _stage(self, key: str, kind: str, plugin: str, labels: dict, params: dict | None = None,
               inputs: dict | None = None, status: str = "done") -> None:
        self.started += 1
        self.store.record_stage(StageRow(
            key=key, kind=kind, plugin=plugin, name=labels.get("title", kind), params=params or {},
            inputs=inputs or {}, labels=labels, status=status, started=self.started, ended=self.started + 1,
            duration=1.0, host="test", git_commit=None, versions={}, error=None, messages=[]))

    def evaluate(self, labels: dict, downstream: str, task: str, seed: int, qualities: dict[str, float],
                 layer_weights: list[float] | None = None, with_items: bool = True,
                 items: dict[str, list[list[float]]] | None = None, ids: list[str] | None = None,
                 folds: list[int] | None = None, metrics: dict[str, float] | None = None,
                 params: dict[str, Any] | None = None, dev: dict[str, float] | None = None) -> str:
        """One evaluate stage; ``qualities[metric]`` sets the level of the generated items. With
        ``folds`` (one per item) the stored metric is the mean of the folds' own values. ``metrics``
        gives the stored values of ``items`` that are not ratios (trials, query gains); ``params`` the
        downstream's parameters (another setting: another stage); ``dev`` the dev values it kept."""
        key = _key("evaluate", labels, downstream, seed, *([params] if params else []))
        rng = np.random.default_rng(int(key[:8], 16))
        stats = items or {m: make_items(task, m, q, self.n_items, rng) for m, q in qualities.items()}
        n = len(next(iter(stats.values())))
        ids = ids or ([f"pair{i:03d}" for i in range(n)] if task == "abx" else [f"utt{i:04d}" for i in range(n)])
        folder = self.output / key
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "items.jsonl", "w") as f:
            for i, item_id in enumerate(ids):
                # None: the item has no stats for that metric (an ABX pair outside a condition)
                line = {"id": item_id, "stats": {m: stats[m][i] for m in stats if stats[m][i] is not None}}
                if folds is not None:
                    line["fold"] = folds[i]
                f.write(json.dumps(line) + "\n")

        def value(pairs: list[list[float]]) -> float:
            pairs = [s for s in pairs if s is not None]
            return 100 * sum(s[0] for s in pairs) / sum(s[1] for s in pairs)

        if metrics is None and folds is None:
            metrics = {m: value(v) for m, v in stats.items()}
        elif metrics is None:
            metrics = {m: float(np.mean([value([p for p, k in zip(v, folds, strict=True) if k == fold])
                                         for fold in sorted(set(folds))])) for m, v in stats.items()}
        directions = {m: TASK_METRICS[task][m] for m in metrics}
        (folder / "metrics.json").write_text(json.dumps({
            "task": task, "metrics": metrics, "directions": directions, "n_items": n,
            "layer_weights": layer_weights, "extra": {"dev": dev} if dev is not None else {}}))
        full = {**labels, "seed": seed, "downstream": downstream, "task": task,
                "title": f"evaluate {downstream} on {labels['model']}"}
        self._stage(key, "evaluate", task, full, params=params or {}, inputs={"model": "m", "corpus": "c"})
        self.store.record_metrics(key, [
            MetricRow(key, task, m, v, directions[m], n, f"{key}/items.jsonl" if with_items else None)
            for m, v in metrics.items()])
        self.evals[(labels["upstream"], labels["model"], downstream, seed)] = key  # the newest
        for m, v in metrics.items():
            self.values[(labels["upstream"], labels["model"], f"{downstream}.{m}", seed)] = v
        return key

    def metrics_of(self, key: str) -> tuple[dict[str, float], dict[str, str]]:
        data = json.loads((self.output / key / "metrics.json").read_text())
        return ({f"{data['task']}.{m}": v for m, v in data["metrics"].items()},
                {f"{data['task']}.{m}": v for m, v in data["directions"].items()})

    def score(self, labels: dict, seed: int, eval_keys: dict[str, str], reference_keys: dict[str, str],
              offset: float = 0.0) -> float:
        """A score stage; ``offset`` is added to the stored score (a store the items do not explain)."""
        metrics: dict[str, float] = {}
        directions: dict[str, str] = {}
        for k in eval_keys.values():
            metrics.update(self.metrics_of(k)[0])
            directions.update(self.metrics_of(k)[1])
        fbank: dict[str, float] = {}
        for k in reference_keys.values():
            fbank.update(self.metrics_of(k)[0])
        value = superb_measured(metrics, fbank, directions) + offset
        result = {"score": value, "tasks": {}}
        key = _key("score", labels, seed, sorted(eval_keys.items()))
        inputs = {f"eval.{n}": k for n, k in eval_keys.items()}
        inputs.update({f"reference.{n}": k for n, k in reference_keys.items()})
        tasks = {n: n for n in eval_keys}
        self._stage(key, "score", "superb", {**labels, "seed": seed, "title": "score"},
                    params={"reference": self.reference, "tasks": tasks}, inputs=inputs)
        rows = [MetricRow(key, "superb", "score", float(result["score"]), "higher", None, None)]
        rows += [MetricRow(key, "superb", t, float(v), "higher", None, None) for t, v in result["tasks"].items()]
        self.store.record_metrics(key, rows)
        self.values[(labels["upstream"], labels["model"], "superb.score", seed)] = float(result["score"])
        return float(result["score"])


def labels(upstream: str, model: str, finetune: str = "none", merge: str = "", alpha: float | None = 0.0,
           merge_params: Any = None) -> dict[str, Any]:
    return {"upstream": upstream, "model": model, "finetune": finetune, "merge": merge, "alpha": alpha,
            "merge_params": merge_params}


#: models of the standard fake run: (labels, quality offsets per metric; positive = better)
MODELS = [
    (labels("tiny", "pre-trained"), 0.0),
    (labels("tiny", "pr · interp alpha=0.25", "pr", "interp", 0.25, {"alpha": 0.25}), 6.0),
    (labels("tiny", "pr (Stable-FT)", "pr", "", 1.0), 3.0),
    (labels("fbank", "pre-trained"), -10.0),
]
BASE_QUALITY = {"pr": {"per": 30.0}, "sid": {"acc": 70.0}, "sf": {"f1": 75.0, "cer": 35.0}, "abx": {"error": 20.0}}


def standard_run(output: Path, seeds: list[int], n_items: int = 80,
                 tasks: tuple[str, ...] = ("pr", "sid", "sf", "abx")) -> FakeRun:
    """Three tiny-upstream models (pre-trained, Speech-FT α = 0.25, Stable-FT) and FBank, each task,
    each seed, with SUPERB scores against the measured FBank."""
    run = FakeRun(output, n_items=n_items)
    for seed in seeds:
        fbank_keys: dict[str, str] = {}
        cells = []
        for lab, offset in MODELS:
            keys = {}
            for task in tasks:
                quality = {m: q - offset if TASK_METRICS[task][m] == "lower" else q + offset
                           for m, q in BASE_QUALITY[task].items()}
                if task == "abx" and lab["finetune"] != "none":
                    quality = {"error": 20.0 + 0.3 * offset}  # fine-tuning hurts ABX a little
                weights = None if task == "abx" else list(np.round(np.linspace(1, 2 + offset / 3, 4) / 10, 4))
                keys[task] = run.evaluate(lab, task, task, seed, quality, layer_weights=weights)
            if lab["upstream"] == "fbank":
                fbank_keys = keys
            cells.append((lab, keys))
        for lab, keys in cells:
            run.score(lab, seed, keys, fbank_keys)
    return run
