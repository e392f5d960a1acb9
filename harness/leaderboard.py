"""The leaderboard: models × metrics from a results store, with intervals and tests against the baseline.

Rows are models (upstream × fine-tuning × merge), columns every downstream metric and the SUPERB
score. A value is the mean over seeds with a 95 % percentile bootstrap interval over the test items
(and the seeds when there are several, see :mod:`harness.stats`). Each model is compared with the
pre-trained model of its upstream (labels ``finetune == "none"``) on the same items and seeds: a
paired permutation test over items, the paired-bootstrap interval of the difference, and a paired
t-test over seeds from 3 seeds on. A difference is marked significant when the item test gives
p < 0.05 and, with 3 seeds or more, the seed test does too.

The SUPERB score's interval comes from resampling the items of all its tasks jointly through
:mod:`harness.scoring` when every task saved per-item results and the recomputed score matches the
stored one; otherwise it is a Student-t interval over seeds (2 seeds or more).

:func:`build` reads the store; :func:`render` writes ``md``, ``csv``, ``html`` or ``json``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness import stats
from harness.errors import HarnessError
from harness.store import DB_NAME, MetricRow, StageRow, Store

log = logging.getLogger(__name__)

FORMATS = ("md", "csv", "html", "json")
SUPERB = "superb.score"
TASK_ORDER = ("pr", "asr", "sid", "er", "sf", "ic", "ks", "abx")
BASELINE_FINETUNE = "none"


@dataclass
class Settings:
    level: float = 0.95
    n_resamples: int = 2000
    n_permutations: int = 5000
    seed: int = 0
    threshold: float = 0.05


@dataclass
class Column:
    key: str  # "<downstream>.<metric>" or "superb.score"
    downstream: str  # recipe entry name ("" for the SUPERB score)
    task: str  # plugin name ("superb" for the score)
    metric: str
    direction: str

    @property
    def label(self) -> str:
        if self.key == SUPERB:
            return "SUPERB"
        name = self.task.upper() if self.downstream == self.task else self.downstream
        return f"{name} {self.metric.upper()}"

    @property
    def arrow(self) -> str:
        return "↓" if self.direction == "lower" else "↑"


@dataclass
class Comparison:
    """Model − baseline on the shared items and seeds."""

    delta: float
    low: float | None
    high: float | None
    p_items: float | None
    p_seeds: float | None
    n_seeds: int
    significant: bool
    better: bool


@dataclass
class Cell:
    mean: float
    low: float | None
    high: float | None
    interval: str  # "items", "items+seeds", "seeds" or "" (none)
    per_seed: dict[int, float]
    n_items: int | None
    vs_baseline: Comparison | None = None


@dataclass
class AbxSpread:
    """The delta-value standard deviations of one ABX metric (see :func:`harness.stats.delta_value_std`)."""

    n_pairs: int
    delta_value_std: float
    paired_delta_value_std: float | None


@dataclass
class Row:
    upstream: str
    model: str
    finetune: str
    merge: str
    merge_params: Any
    alpha: float | None
    seeds: list[int]
    baseline: bool
    cells: dict[str, Cell] = field(default_factory=dict)
    layer_weights: dict[str, list[float]] = field(default_factory=dict)
    abx: dict[str, AbxSpread] = field(default_factory=dict)


@dataclass
class Leaderboard:
    source: str
    columns: list[Column]
    rows: list[Row]
    settings: Settings
    reference: str | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return _finite({
            "source": self.source,
            "reference": self.reference,
            "settings": asdict(self.settings),
            "columns": [{**asdict(c), "label": c.label} for c in self.columns],
            "rows": [asdict(r) for r in self.rows],
            "notes": self.notes,
        })

    @property
    def multi_upstream(self) -> bool:
        return len({r.upstream for r in self.rows}) > 1

    def row_label(self, row: Row) -> str:
        return f"{row.upstream} · {row.model}" if self.multi_upstream else row.model


def _finite(x: Any) -> Any:
    """JSON-safe copy: non-finite floats become None, dict keys strings."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x


# ---------------------------------------------------------------------------------------------- building


def _row_key(labels: dict[str, Any]) -> tuple:
    return (str(labels.get("upstream", "")), str(labels.get("finetune", "")), str(labels.get("merge") or ""),
            json.dumps(labels.get("merge_params"), sort_keys=True, default=str), str(labels.get("model", "")))


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6)


Scorer = Callable[[dict[str, float]], float]


def _scorer(reference: str, fbank: dict[str, float] | None, directions: dict[str, str]) -> Scorer | None:
    """The SUPERB score of a ``task.metric`` dict against ``reference`` (FBank measured values for
    ``measured``), through :mod:`harness.scoring`; None when that module or the table is unavailable."""
    try:
        from harness import scoring

        if reference == "measured":
            table = scoring.measured_table(fbank or {}, directions)
        else:
            table = scoring.get_table(reference)
        superb_score = scoring.superb_score
    except (ImportError, AttributeError, HarnessError):
        return None
    return lambda metrics: float(superb_score(metrics, table, strict=False).score)


class _Builder:
    def __init__(self, output: Path, stages: list[StageRow], metrics: dict[str, list[MetricRow]],
                 settings: Settings):
        self.output = output
        self.settings = settings
        self.metrics = metrics
        self.notes: list[str] = []
        self.stage_by_key = {s.key: s for s in stages}
        self.evals = [s for s in stages if s.kind == "evaluate" and s.labels.get("downstream")]
        self.scores = [s for s in stages if s.kind == "score"]
        self._items: dict[str, list[dict] | None] = {}
        self._json: dict[str, dict | None] = {}
        self.item_stats: dict[tuple, stats.ItemStats] = {}  # (row key, column key) -> stats
        self.score_groups: dict[tuple, tuple[dict[str, stats.ItemStats], Callable]] = {}

    # -------------------------------------------------------------- files

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
            log.info(text)

    def items(self, metric: MetricRow) -> list[dict] | None:
        path = metric.items_path
        if not path:
            return None
        if path not in self._items:
            file = self.output / path
            try:
                with open(file, encoding="utf-8") as f:
                    self._items[path] = [json.loads(line) for line in f if line.strip()]
            except (OSError, json.JSONDecodeError) as exc:
                self.note(f"per-item results {file} could not be read ({exc}); its intervals use seeds only.")
                self._items[path] = None
        return self._items[path]

    def stage_json(self, key: str, name: str) -> dict | None:
        cache_key = f"{key}/{name}"
        if cache_key not in self._json:
            try:
                self._json[cache_key] = json.loads((self.output / key / name).read_text())
            except (OSError, json.JSONDecodeError):
                self._json[cache_key] = None
        return self._json[cache_key]

    # -------------------------------------------------------------- rows and columns

    def build(self) -> Leaderboard:
        rows: dict[tuple, Row] = {}
        ft_order: dict[str, int] = {}
        up_order: dict[str, int] = {}
        for stage in [*self.evals, *self.scores]:
            labels = stage.labels
            key = _row_key(labels)
            up_order.setdefault(key[0], len(up_order))
            ft_order.setdefault(key[1], len(ft_order))
            if key not in rows:
                alpha = labels.get("alpha")
                rows[key] = Row(upstream=key[0], model=key[4] or key[1], finetune=key[1], merge=key[2],
                                merge_params=labels.get("merge_params"),
                                alpha=float(alpha) if alpha is not None else None, seeds=[],
                                baseline=key[1] == BASELINE_FINETUNE)
            seed = int(labels.get("seed", 0))
            if seed not in rows[key].seeds:
                rows[key].seeds.append(seed)
        for row in rows.values():
            row.seeds.sort()

        def order(item: tuple[tuple, Row]) -> tuple:
            key, row = item
            alpha = row.alpha if row.alpha is not None else 2.0
            return (up_order[key[0]], not row.baseline, ft_order[key[1]], alpha, row.model)

        ordered = dict(sorted(rows.items(), key=order))
        columns = self.columns()
        reference = next((str(s.params.get("reference")) for s in self.scores), None)
        for key, row in ordered.items():
            for col in columns:
                cell = self.score_cell(key, row) if col.key == SUPERB else self.eval_cell(key, row, col)
                if cell is not None:
                    row.cells[col.key] = cell
            self.layer_weights(key, row)
        baselines = {r.upstream: (k, r) for k, r in ordered.items() if r.baseline}
        for key, row in ordered.items():
            base = baselines.get(row.upstream)
            if base is None or row.baseline:
                continue
            for col in columns:
                if col.key in row.cells and col.key in base[1].cells:
                    row.cells[col.key].vs_baseline = self.compare(key, row, base[0], base[1], col)
        for key, row in ordered.items():
            base = baselines.get(row.upstream)
            for col in columns:
                if col.task == "abx" and (key, col.key) in self.item_stats:
                    own = self.item_stats[(key, col.key)]
                    paired = None
                    if base is not None and not row.baseline and (base[0], col.key) in self.item_stats:
                        paired = stats.paired_delta_value_std(own, self.item_stats[(base[0], col.key)])
                    row.abx[col.key] = AbxSpread(own.n_items, stats.delta_value_std(own), paired)
        if not any(r.baseline for r in ordered.values()):
            self.note("no pre-trained model in the store (recipe baseline off): no significance tests.")
        return Leaderboard(str(self.output), columns, list(ordered.values()), self.settings, reference, self.notes)

    def columns(self) -> list[Column]:
        found: dict[str, Column] = {}
        first: dict[str, int] = {}
        for stage in self.evals:
            downstream = str(stage.labels["downstream"])
            task = str(stage.labels.get("task") or stage.plugin)
            first.setdefault(downstream, len(first))
            declared = list((self.stage_json(stage.key, "metrics.json") or {}).get("metrics") or {})
            rows = sorted(self.metrics.get(stage.key, []),
                          key=lambda m: declared.index(m.metric) if m.metric in declared else len(declared))
            for m in rows:  # in the plugin's own order (SF: F1, then CER)
                if m.task.startswith("finetune."):
                    continue
                key = f"{downstream}.{m.metric}"
                found.setdefault(key, Column(key, downstream, task, m.metric, m.direction))

        def rank(col: Column) -> tuple:
            task_rank = TASK_ORDER.index(col.task) if col.task in TASK_ORDER else len(TASK_ORDER)
            return (task_rank, first[col.downstream])

        cols = sorted(found.values(), key=rank)  # stable: metrics keep their first-seen order
        if any(m.metric == "score" for s in self.scores for m in self.metrics.get(s.key, [])):
            cols.append(Column(SUPERB, "", "superb", "score", "higher"))
        return cols

    def runs(self, key: tuple, downstream: str) -> dict[int, StageRow]:
        return {int(s.labels.get("seed", 0)): s for s in self.evals
                if _row_key(s.labels) == key and s.labels.get("downstream") == downstream}

    # -------------------------------------------------------------- cells

    def metric_row(self, stage_key: str, metric: str, task: str | None = None) -> MetricRow | None:
        for m in self.metrics.get(stage_key, []):
            if m.metric == metric and (task is None or m.task == task):
                return m
        return None

    def eval_stats(self, runs: dict[int, StageRow], metric: str, where: str) -> stats.ItemStats | None:
        """Per-item stats of one metric over the seeds' evaluate stages, or None (with a note) if unusable."""
        per_seed = {}
        for seed, stage in runs.items():
            row = self.metric_row(stage.key, metric)
            items = self.items(row) if row else None
            if items is None:
                return None
            per_seed[seed] = items
        try:
            st = stats.ItemStats.from_items(per_seed, metric)
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            self.note(f"{where}: per-item results are malformed ({exc}); intervals use seeds only.")
            return None
        if st.n_items == 0:
            self.note(f"{where}: per-item results carry no stats for {metric!r}; intervals use seeds only.")
            return None
        sizes = {len(v) for v in per_seed.values()}
        if max(sizes) != st.n_items:
            self.note(f"{where}: seeds were evaluated on different items; only the {st.n_items} shared ones "
                      "enter the intervals.")
        for seed, value in zip(st.seeds, st.per_seed(), strict=True):
            stored = self.metric_row(runs[seed].key, metric)
            if stored is not None and not _close(float(value), stored.value):
                self.note(f"{where}: per-item results give {value:.4g}, the store {stored.value:.4g} "
                          f"(seed {seed}); intervals use seeds only.")
                return None
        return st

    def eval_cell(self, key: tuple, row: Row, col: Column) -> Cell | None:
        runs = {s: st for s, st in self.runs(key, col.downstream).items()
                if self.metric_row(st.key, col.metric) is not None}
        if not runs:
            return None
        per_seed = {s: self.metric_row(st.key, col.metric).value for s, st in sorted(runs.items())}
        n_items = self.metric_row(next(iter(runs.values())).key, col.metric).n_items
        where = f"{row.upstream} / {row.model} / {col.label}"
        st = self.eval_stats(runs, col.metric, where)
        if st is not None:
            self.item_stats[(key, col.key)] = st
        return self._cell(per_seed, st, None, n_items)

    def _cell(self, per_seed: dict[int, float], group: stats.ItemStats | dict | None,
              combine: Callable | None, n_items: int | None) -> Cell:
        s = self.settings
        mean = float(np.mean(list(per_seed.values())))
        if group is not None:
            ci = stats.bootstrap_ci(group, combine, s.level, s.n_resamples, s.seed)
            kind = "items+seeds" if len(per_seed) > 1 else "items"
        else:
            ci = stats.seed_interval(list(per_seed.values()), s.level)
            kind = "seeds" if ci is not None else ""
        return Cell(mean, ci.low if ci else None, ci.high if ci else None, kind, per_seed, n_items)

    def score_cell(self, key: tuple, row: Row) -> Cell | None:
        runs = {int(s.labels.get("seed", 0)): s for s in self.scores if _row_key(s.labels) == key}
        per_seed = {seed: m.value for seed, st in sorted(runs.items())
                    if (m := self.metric_row(st.key, "score", "superb")) is not None}
        if not per_seed:
            return None
        joint = self.score_group(runs, f"{row.upstream} / {row.model} / SUPERB")
        if joint is not None:
            group, combine = joint
            recomputed = stats.observed(group, combine)
            if _close(recomputed, float(np.mean(list(per_seed.values())))):
                self.score_groups[key] = joint
            else:
                self.note(f"{row.upstream} / {row.model}: the SUPERB score recomputed from per-item results "
                          f"({recomputed:.4g}) differs from the stored one; its interval uses seeds only.")
                joint = None
        return self._cell(per_seed, joint[0] if joint else None, joint[1] if joint else None, None)

    def score_group(self, runs: dict[int, StageRow], where: str) -> tuple[dict, stats.Combine] | None:
        """Every metric behind the score as ItemStats over seeds, and the per-seed scoring as a Combine."""
        items: dict[str, dict[int, list[dict]]] = {}
        scorers: dict[int, Scorer] = {}
        for seed, st in runs.items():
            names: set[str] = set()
            fbank: dict[str, float] = {}
            directions: dict[str, str] = {}
            for role, eval_key in sorted(st.inputs.items()):
                for m in self.metrics.get(eval_key, []):
                    name = f"{m.task}.{m.metric}"
                    directions.setdefault(name, m.direction)
                    if role.startswith("reference."):
                        fbank[name] = m.value
                    if not role.startswith("eval."):
                        continue
                    data = self.items(m)
                    if data is None:
                        self.note(f"{where}: {name} has no per-item results; the SUPERB interval is over seeds only.")
                        return None
                    items.setdefault(name, {})[seed] = [{"id": it["id"], "stats": {name: it["stats"][m.metric]}}
                                                        for it in data if m.metric in it.get("stats", {})]
                    names.add(name)
            if set(items) != names:
                return None
            scorer = _scorer(str(st.params.get("reference")), fbank, directions)
            if scorer is None:
                self.note("harness.scoring cannot score this store's reference: SUPERB intervals are over seeds only.")
                return None
            scorers[seed] = scorer
        try:
            group = {name: stats.ItemStats.from_items(by_seed, name) for name, by_seed in items.items()}
        except (KeyError, TypeError, IndexError, ValueError):
            return None
        return (group, _superb_combine(scorers)) if group else None

    def layer_weights(self, key: tuple, row: Row) -> None:
        downstreams = dict.fromkeys(str(s.labels["downstream"]) for s in self.evals if _row_key(s.labels) == key)
        for downstream in downstreams:
            curves = []
            for stage in self.runs(key, downstream).values():
                data = self.stage_json(stage.key, "metrics.json") or {}
                weights = data.get("layer_weights")
                if weights:
                    curves.append([float(w) for w in weights])
            if curves and len({len(c) for c in curves}) == 1:
                row.layer_weights[downstream] = [float(v) for v in np.mean(curves, axis=0)]

    # -------------------------------------------------------------- comparisons

    def compare(self, key: tuple, row: Row, base_key: tuple, base: Row, col: Column) -> Comparison | None:
        s = self.settings
        cell, bcell = row.cells[col.key], base.cells[col.key]
        seeds = sorted(set(cell.per_seed) & set(bcell.per_seed))
        if not seeds:
            return None
        diffs = [cell.per_seed[x] - bcell.per_seed[x] for x in seeds]
        p_seeds = stats.seed_ttest([cell.per_seed[x] for x in seeds], [bcell.per_seed[x] for x in seeds])
        pair = self.paired_groups(key, base_key, col)
        if pair is not None:
            model_g, base_g, combine = pair
            perm = stats.permutation_test(model_g, base_g, combine, s.n_permutations, s.seed)
            boot = stats.paired_bootstrap(model_g, base_g, combine, s.level, s.n_resamples, s.seed)
            delta, low, high, p_items = boot.delta, boot.interval.low, boot.interval.high, perm.pvalue
        else:
            ci = stats.seed_interval(diffs, s.level)
            delta, low, high, p_items = float(np.mean(diffs)), ci.low if ci else None, ci.high if ci else None, None
        tests = [p for p in (p_items, p_seeds) if p is not None]
        significant = bool(tests) and all(p < s.threshold for p in tests)
        better = delta < 0 if col.direction == "lower" else delta > 0
        return Comparison(delta, low, high, p_items, p_seeds, len(seeds), significant, better)

    def paired_groups(self, key: tuple, base_key: tuple, col: Column) -> tuple | None:
        if col.key == SUPERB:
            if key not in self.score_groups or base_key not in self.score_groups:
                return None
            (g, combine), (bg, _) = self.score_groups[key], self.score_groups[base_key]
            if set(g) != set(bg):
                return None
            try:
                pairs = {n: stats.align(g[n], bg[n]) for n in g}
            except ValueError:
                return None
            return {n: p[0] for n, p in pairs.items()}, {n: p[1] for n, p in pairs.items()}, combine
        a, b = self.item_stats.get((key, col.key)), self.item_stats.get((base_key, col.key))
        if a is None or b is None:
            return None
        try:
            a, b = stats.align(a, b)
        except ValueError:
            return None
        if a.n_items < min(len(self.item_stats[(key, col.key)].ids), len(self.item_stats[(base_key, col.key)].ids)):
            self.note(f"{col.label}: model and baseline share {a.n_items} items; the paired tests use those.")
        return a, b, None


def _affine(scorer: Scorer, at: dict[str, float]) -> tuple[float, np.ndarray] | None:
    """(score at ``at``, d score / d metric) if ``scorer`` is affine around ``at``, else None.

    The SUPERB score is a mean of linear rescalings of the metrics, so its coefficients come from one
    call per metric; they are checked at two random points before use.
    """
    names = list(at)
    base = scorer(at)
    coef = np.array([scorer({**at, n: at[n] + 1.0}) - base for n in names])
    x0 = np.array([at[n] for n in names])
    rng = np.random.default_rng(0)
    for _ in range(2):
        x = x0 + rng.uniform(-10, 10, len(names))
        actual = scorer(dict(zip(names, map(float, x), strict=True)))
        if not math.isclose(base + float(coef @ (x - x0)), actual, rel_tol=1e-9, abs_tol=1e-6):
            return None
    return base, coef


def _safe(scorer: Scorer, metrics: dict[str, float]) -> float:
    try:
        return scorer(metrics)
    except HarnessError:  # a replicate where a metric is undefined (no denominator drawn)
        return float("nan")


def _superb_combine(scorers: dict[int, Scorer]) -> stats.Combine:
    """A :data:`harness.stats.Combine`: the SUPERB score of each replicate with its seed's scorer.

    Evaluated as a matrix product when the scorer is affine (see :func:`_affine`), else once per
    replicate.
    """
    linear: dict[int, tuple[dict[str, float], float, np.ndarray] | None] = {}

    def score(seed: int, values: dict[str, np.ndarray]) -> np.ndarray:
        names = list(values)
        if seed not in linear:
            at = {n: float(v[0]) for n, v in values.items()}
            fit = _affine(scorers[seed], at) if all(math.isfinite(x) for x in at.values()) else None
            linear[seed] = (at, *fit) if fit is not None else None
        fit = linear[seed]
        if fit is not None and list(fit[0]) == names:
            at, base, coef = fit
            x = np.stack([values[n] for n in names], axis=1) - np.array([at[n] for n in names])
            return base + x @ coef
        return np.array([_safe(scorers[seed], {n: float(v[j]) for n, v in values.items()})
                         for j in range(len(values[names[0]]))])

    def combine(values: dict[str, np.ndarray], seeds: tuple[int, ...]) -> np.ndarray:
        out = np.empty_like(next(iter(values.values())))
        for k, seed in enumerate(seeds):
            out[:, k] = score(seed, {n: v[:, k] for n, v in values.items()})
        return out

    return combine


def build(output: Path, settings: Settings | None = None) -> Leaderboard:
    """Read the results store of an output folder and compute every cell, interval and test."""
    output = Path(output)
    if not (output / DB_NAME).is_file():
        raise HarnessError(f"{output} holds no results store ({DB_NAME}); give the output folder of `harness run`.")
    with Store(output, readonly=True) as store:
        stages = [s for s in store.stages(status="done") if s.kind in ("evaluate", "score")]
        metrics: dict[str, list[MetricRow]] = {}
        for m in store.metrics():
            metrics.setdefault(m.stage, []).append(m)
    if not stages:
        raise HarnessError(f"the store in {output} holds no finished evaluate or score stage yet; "
                           "run a recipe to completion first.")
    return _Builder(output, stages, metrics, settings or Settings()).build()


# ---------------------------------------------------------------------------------------------- rendering


def fmt(value: float | None, digits: int = 2, sign: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def fmt_p(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def fmt_cell(cell: Cell | None) -> str:
    """``mean [low, high]`` with `` *`` when the difference to the baseline is significant."""
    if cell is None:
        return "–"
    text = fmt(cell.mean)
    if cell.low is not None and cell.high is not None:
        text += f" [{fmt(cell.low)}, {fmt(cell.high)}]"
    if cell.vs_baseline is not None and cell.vs_baseline.significant:
        text += " *"
    return text


def fmt_delta(cmp: Comparison | None) -> str:
    if cmp is None:
        return "–"
    text = fmt(cmp.delta, sign=True)
    if cmp.low is not None and cmp.high is not None:
        text += f" [{fmt(cmp.low, sign=True)}, {fmt(cmp.high, sign=True)}]"
    return text + (" *" if cmp.significant else "")


def fmt_pvalues(cmp: Comparison | None) -> str:
    if cmp is None:
        return "–"
    parts = []
    if cmp.p_items is not None:
        parts.append(fmt_p(cmp.p_items))
    if cmp.p_seeds is not None:
        parts.append(f"seeds {fmt_p(cmp.p_seeds)}")
    return " · ".join(parts) or "–"


def method_text(lb: Leaderboard) -> dict[str, str]:
    """The sentences that explain the numbers, shared by the markdown and HTML pages."""
    s = lb.settings
    level = f"{round(s.level * 100)} %"
    return {
        "values": (f"Mean over seeds [{level} interval: percentile bootstrap over test items, and over seeds "
                   f"when there are several; {s.n_resamples} resamples]. * marks p < {s.threshold:g} against "
                   "the pre-trained model of the same upstream."),
        "superb": ("The SUPERB score's interval resamples the items of all its tasks jointly (FBank's measured "
                   "reference values held fixed); where per-item results are missing it is a Student-t "
                   "interval over seeds."),
        "compare": (f"Δ = model − pre-trained on the same items and seeds, with its {level} paired-bootstrap "
                    f"interval. p: paired permutation test over items ({s.n_permutations} resamples, two-sided), "
                    "and a paired t-test over seeds (\"seeds\") from 3 seeds on; * needs p < "
                    f"{s.threshold:g} in every test that applies."),
        "abx": ("δ(p) is a model's ABX score on phone pair p (percent, pooled over seeds). δ sd is the standard "
                "deviation of δ over pairs: the model's discriminative range. Δ sd is the standard deviation "
                "over pairs of δ_model(p) − δ_pre-trained(p): the spread of per-pair differences between the two "
                "models. p is the paired permutation test over pairs."),
    }


def _md_table(header: list[str], rows: list[list[str]], right_from: int) -> list[str]:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    aligns = ["---" if k < right_from else "---:" for k in range(len(header))]
    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "|".join(aligns) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return lines


def seeds_text(lb: Leaderboard) -> str:
    counts = sorted({len(r.seeds) for r in lb.rows})
    if not counts:
        return "no seeds"
    n = str(counts[0]) if counts[0] == counts[-1] else f"{counts[0]}–{counts[-1]}"
    return f"{n} seed{'s' if counts[-1] > 1 else ''}"


def render_markdown(lb: Leaderboard) -> str:
    text = method_text(lb)
    out = ["# Leaderboard", ""]
    ref = f" · SUPERB reference: {lb.reference}" if lb.reference else ""
    out += [f"Results in `{lb.source}` · {len(lb.rows)} models · {seeds_text(lb)}{ref}.", "", text["values"]]
    if any(c.key == SUPERB for c in lb.columns):
        out += ["", text["superb"]]
    out.append("")
    header = ["upstream", "model", "seeds"] + [f"{c.label} {c.arrow}" for c in lb.columns]
    rows = [[r.upstream, r.model, str(len(r.seeds))] + [fmt_cell(r.cells.get(c.key)) for c in lb.columns]
            for r in lb.rows]
    out += _md_table(header, rows, 2)
    compared = [r for r in lb.rows if any(c.vs_baseline for c in r.cells.values())]
    if compared:
        out += ["", "## Against the pre-trained model", "", text["compare"], ""]
        header = ["upstream", "model"]
        for c in lb.columns:
            header += [f"{c.label} Δ {c.arrow}", "p"]
        rows = []
        for r in compared:
            line = [r.upstream, r.model]
            for c in lb.columns:
                cmp = r.cells[c.key].vs_baseline if c.key in r.cells else None
                line += [fmt_delta(cmp), fmt_pvalues(cmp)]
            rows.append(line)
        out += _md_table(header, rows, 2)
    abx = [(r, c) for r in lb.rows for c in lb.columns if c.key in r.abx]
    if abx:
        out += ["", "## ABX: delta-value standard deviation", "", text["abx"], ""]
        header = ["upstream", "model", "metric", "pairs", "value", "δ sd", "Δ sd vs pre-trained", "p"]
        rows = []
        for r, c in abx:
            spread, cell = r.abx[c.key], r.cells[c.key]
            cmp = cell.vs_baseline
            rows.append([r.upstream, r.model, f"{c.label} {c.arrow}", str(spread.n_pairs), fmt(cell.mean),
                         fmt(spread.delta_value_std), fmt(spread.paired_delta_value_std),
                         fmt_p(cmp.p_items) if cmp else "–"])
        out += _md_table(header, rows, 3)
    if lb.notes:
        out += ["", "## Notes", ""] + [f"- {n}" for n in lb.notes]
    return "\n".join(out) + "\n"


CSV_FIELDS = ("upstream", "model", "finetune", "merge", "alpha", "seeds", "column", "direction", "mean",
              "ci_low", "ci_high", "interval", "n_items", "per_seed", "delta", "delta_low", "delta_high",
              "p_items", "p_seeds", "significant", "delta_value_std", "paired_delta_value_std")


def render_csv(lb: Leaderboard) -> str:
    """One line per model and column (tidy); empty fields where a value does not apply."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()

    def num(x: float | None) -> str:
        return "" if x is None or not math.isfinite(x) else repr(float(x))

    for r in lb.rows:
        for c in lb.columns:
            cell = r.cells.get(c.key)
            if cell is None:
                continue
            cmp, spread = cell.vs_baseline, r.abx.get(c.key)
            writer.writerow({
                "upstream": r.upstream, "model": r.model, "finetune": r.finetune, "merge": r.merge,
                "alpha": num(r.alpha), "seeds": " ".join(map(str, r.seeds)), "column": c.key,
                "direction": c.direction, "mean": num(cell.mean), "ci_low": num(cell.low),
                "ci_high": num(cell.high), "interval": cell.interval,
                "n_items": "" if cell.n_items is None else cell.n_items,
                "per_seed": " ".join(f"{s}:{v!r}" for s, v in cell.per_seed.items()),
                "delta": num(cmp.delta) if cmp else "", "delta_low": num(cmp.low) if cmp else "",
                "delta_high": num(cmp.high) if cmp else "", "p_items": num(cmp.p_items) if cmp else "",
                "p_seeds": num(cmp.p_seeds) if cmp else "", "significant": str(cmp.significant) if cmp else "",
                "delta_value_std": num(spread.delta_value_std) if spread else "",
                "paired_delta_value_std": num(spread.paired_delta_value_std) if spread else "",
            })
    return buf.getvalue()


def render_json(lb: Leaderboard) -> str:
    return json.dumps(lb.to_dict(), indent=2, ensure_ascii=False) + "\n"


def render(lb: Leaderboard, fmt_name: str) -> str:
    if fmt_name == "md":
        return render_markdown(lb)
    if fmt_name == "csv":
        return render_csv(lb)
    if fmt_name == "json":
        return render_json(lb)
    if fmt_name == "html":
        from harness.leaderboard_html import render_html

        return render_html(lb)
    raise HarnessError(f"unknown leaderboard format {fmt_name!r}; choose one of {', '.join(FORMATS)}.")
