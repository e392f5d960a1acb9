"""The leaderboard from a results store: which models and metrics it holds, and every cell's interval
and test against the baseline.

Rows are models (upstream × fine-tuning × merge), columns every downstream metric and the SUPERB
score. A value is the mean over seeds with a 95 % percentile bootstrap interval over the test items
(and the seeds when there are several, see :mod:`harness.report.stats`). Each model is compared with the
pre-trained model of its upstream (labels ``finetune == "none"``) on the same items and seeds: a
paired permutation test over items (the paired bootstrap's p for an EER, an MTWV and a SUPERB score
that includes them), the paired-bootstrap interval of the difference, and a paired t-test over seeds
from 3 seeds on. A difference is marked significant when the item test gives p < 0.05 and, with 3
seeds or more, the seed test does too; ``Settings.adjust`` adjusts each table's p-values for testing
them all first. A merge with 0 < α < 1 (Speech-FT) is compared the same way with its fully fine-tuned
model (Stable-FT, α = 1, see :func:`finetuned_pairs`); :meth:`_Builder.compare_pair` compares any two.

Cross-validated results (items carrying a ``fold``) are valued as the mean of their folds' own
values, and resampled within each fold.

The SUPERB score's interval comes from resampling the items of all its tasks jointly through
:mod:`harness.report.leaderboard.superb` when every task saved per-item results and the recomputed
score matches the stored one; otherwise it is a Student-t interval over seeds (2 seeds or more).

Columns follow each downstream plugin's declared ``order`` (tasks whose plugin is not installed come
last, by name). :func:`build` reads the store; :func:`harness.report.leaderboard.dispatch.render` writes
``md``, ``csv``, ``html`` or ``json``.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.errors import HarnessError, PluginError
from harness.core.registry import PluginManager, default_manager
from harness.core.stage_kinds import StageKind
from harness.core.store import DB_NAME, MetricRow, StageRow, Store
from harness.evaluation import scoring
from harness.report import stats
from harness.report.item_stats import MIN_CLUSTERS
from harness.report.leaderboard import superb
from harness.report.leaderboard.model import (
    BASELINE_FINETUNE,
    SUPERB,
    AbxSpread,
    Cell,
    Column,
    Comparison,
    Leaderboard,
    Pairwise,
    Row,
    Settings,
)
from harness.report.stage_order import in_recipe_order

log = logging.getLogger(__name__)


def task_rank(plugins: PluginManager, task: str) -> tuple[bool, int, str]:
    """Where a task's columns go: by its downstream plugin's ``order``, then name; tasks whose plugin
    is not installed after every other, by name."""
    try:
        order = plugins.get("downstream", task).cls.order
    except PluginError:
        return True, 0, task
    return False, order, task


def _row_key(labels: dict[str, Any]) -> tuple:
    return (str(labels.get("upstream", "")), str(labels.get("finetune", "")), str(labels.get("merge") or ""),
            json.dumps(labels.get("merge_params"), sort_keys=True, default=str), str(labels.get("model", "")))


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6)


def row_key(labels: dict[str, Any]) -> tuple:
    """The identity of a leaderboard row (a model over its seeds) from a stage's labels."""
    return _row_key(labels)


def model_rows(stages: list[StageRow]) -> dict[tuple, Row]:
    """The leaderboard's rows (no cells yet) of the models that ``stages`` (evaluate and score stages) measured,
    in table order: by upstream, the pre-trained model first, then by fine-tuning and α."""
    rows: dict[tuple, Row] = {}
    ft_order: dict[str, int] = {}
    up_order: dict[str, int] = {}
    for stage in in_recipe_order(stages):  # upstreams and fine-tunings in recipe order
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

    return dict(sorted(rows.items(), key=order))


def _without_alpha(params: Any) -> Any:
    return {k: v for k, v in params.items() if k != "alpha"} if isinstance(params, dict) else params


def finetuned_pairs(rows: dict[tuple, Row]) -> dict[tuple, tuple]:
    """Each merge with 0 < α < 1 (Speech-FT) -> the row of its fully fine-tuned model (Stable-FT, α = 1): the
    same upstream, fine-tuning and merge entry with α = 1 (its other swept parameters equal), or else the
    unmerged fine-tuned model of that upstream and fine-tuning. Rows without such a sibling are left out."""
    stable = [(k, r) for k, r in rows.items()
              if not r.baseline and r.alpha is not None and math.isclose(r.alpha, 1.0)]
    out: dict[tuple, tuple] = {}
    for key, row in rows.items():
        if row.baseline or row.alpha is None or not 0.0 < row.alpha < 1.0:
            continue
        same = [k for k, r in stable if (r.upstream, r.finetune) == (row.upstream, row.finetune)]
        merged = [k for k in same if rows[k].merge == row.merge
                  and _without_alpha(rows[k].merge_params) == _without_alpha(row.merge_params)]
        unmerged = [k for k in same if not rows[k].merge]
        if merged or unmerged:
            out[key] = (merged or unmerged)[0]
    return out


FOLD_SEP = "#fold="


@dataclass
class _Stats:
    """A metric's per-item stats: all items, and the strata its value averages (folds, or one)."""

    flat: stats.Resampled
    strata: dict[str, stats.Resampled]  # suffix ("" or "#fold=<k>") -> stats

    def group(self, name: str) -> dict[str, stats.Resampled]:
        return {name + suffix: st for suffix, st in self.strata.items()}


def _strata_combine(inner: stats.Combine | None) -> stats.Combine:
    """Average each metric's fold strata (``name#fold=k``), then hand the metrics to ``inner`` (or
    return the single metric's values)."""

    def combine(values: dict[str, np.ndarray], seeds: tuple[int, ...]) -> np.ndarray:
        merged: dict[str, list[np.ndarray]] = {}
        for name, v in values.items():
            merged.setdefault(name.split(FOLD_SEP, 1)[0], []).append(v)
        means = {n: vs[0] if len(vs) == 1 else np.mean(vs, axis=0) for n, vs in merged.items()}
        if inner is None:
            if len(means) != 1:
                raise ValueError("several metrics need a combine function")
            return next(iter(means.values()))
        return inner(means, seeds)

    return combine


@dataclass
class _Data:
    """One cell's inputs: the stored value of each seed and, when usable, what to resample."""

    per_seed: dict[int, float]
    n_items: int | None
    group: dict[str, stats.Resampled] | None = None  # metric name -> per-item stats over the seeds
    combine: stats.Combine | None = None  # several metrics -> one value (the SUPERB score)
    flat: stats.Resampled | None = None  # the metric's items without fold strata (ABX spreads)
    replicates: np.ndarray | None = None

    def signature(self) -> tuple:
        """Cells with equal signatures share one bootstrap draw (same items, clusters, seeds and combination)."""
        assert self.group is not None
        return id(self.combine), tuple((n, g.ids, g.seeds, _clusters_key(g)) for n, g in self.group.items())


def _significant(p_items: float | None, p_seeds: float | None, threshold: float) -> bool:
    """Marked when every test that applies gives p below the threshold (and one applies)."""
    tests = [p for p in (p_items, p_seeds) if p is not None]
    return bool(tests) and all(p < threshold for p in tests)


def _clusters_key(stats_: stats.Resampled) -> bytes | None:
    codes = stats_.cluster_codes()
    return None if codes is None else codes.tobytes()


class _Builder:
    def __init__(self, output: Path, stages: list[StageRow], metrics: dict[str, list[MetricRow]],
                 settings: Settings, plugins: PluginManager):
        self.output = output
        self.settings = settings
        self.plugins = plugins
        self.metrics = metrics
        self.notes: list[str] = []
        self.evals = [s for s in stages if s.kind == StageKind.EVALUATE and s.labels.get("downstream")]
        self.scores = [s for s in stages if s.kind == StageKind.SCORE]
        # (row key) -> downstream -> seed -> evaluate stage; row key -> seed -> score stage
        self.eval_index: dict[tuple, dict[str, dict[int, StageRow]]] = {}
        for st in self.evals:
            by_ds = self.eval_index.setdefault(_row_key(st.labels), {})
            by_ds.setdefault(str(st.labels["downstream"]), {})[int(st.labels.get("seed", 0))] = st
        self.score_index: dict[tuple, dict[int, StageRow]] = {}
        for st in self.scores:
            self.score_index.setdefault(_row_key(st.labels), {})[int(st.labels.get("seed", 0))] = st
        self._items: dict[str, list[dict] | None] = {}
        self._json: dict[str, dict | None] = {}
        self._stats: dict[tuple, _Stats | None] = {}
        self.data: dict[tuple[tuple, str], _Data] = {}  # (row key, column key)
        # one SUPERB scorer per seed (its reference and FBank values), shared by every model of that seed
        self.scorers: dict[int, superb.Scorer] = {}
        self.scorer_keys: dict[int, tuple] = {}
        self.superb_combine = _strata_combine(superb.superb_combine(self.scorers))
        self.eval_combine = _strata_combine(None)

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
                lines = [line for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
                self._items[path] = json.loads("[" + ",".join(lines) + "]")  # one parse: much faster per line
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
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

    # -------------------------------------------------------------- the table

    def build(self) -> Leaderboard:
        ordered = self.rows()
        columns = self.columns()
        for key, row in ordered.items():
            for col in columns:
                data = self.score_data(key, row) if col.key == SUPERB else self.eval_data(key, row, col)
                if data is not None:
                    self.data[(key, col.key)] = data
            self.layer_weights(key, row)
        for col in columns:
            self.bootstrap_column([key for key in ordered if (key, col.key) in self.data], col)
        for key, row in ordered.items():
            for col in columns:
                if (key, col.key) in self.data:
                    row.cells[col.key] = replace(self.cell(self.data[(key, col.key)]), digits=col.digits)
                    if col.key == SUPERB:
                        row.cells[col.key].covers = self.score_coverage(key)
        baselines = {r.upstream: k for k, r in ordered.items() if r.baseline}
        pairs = {k: baselines[r.upstream] for k, r in ordered.items() if not r.baseline and r.upstream in baselines}
        stable = finetuned_pairs(ordered)
        for col in columns:
            for key, cmp in self.compare_column(pairs, col).items():
                ordered[key].cells[col.key].vs_baseline = replace(cmp, digits=col.digits)
            for key, cmp in self.compare_column(stable, col).items():
                ordered[key].cells[col.key].vs_finetuned = replace(cmp, digits=col.digits)
        for field in ("vs_baseline", "vs_finetuned"):
            cells = [c for r in ordered.values() for c in r.cells.values() if getattr(c, field) is not None]
            for cell, cmp in zip(cells, self.adjusted([getattr(c, field) for c in cells]), strict=True):
                setattr(cell, field, cmp)
        for key, row in ordered.items():
            for col in columns:
                if col.task == "abx":
                    self.abx_spread(key, row, pairs.get(key), col)
        if not baselines:
            self.note("no pre-trained model in the store (recipe baseline off): no significance tests.")
        reference = next((str(s.params.get("reference")) for s in self.scores), None)
        return Leaderboard(str(self.output), columns, list(ordered.values()), self.settings, reference, self.notes)

    def rows(self) -> dict[tuple, Row]:
        return model_rows([*self.evals, *self.scores])

    def compare_pair(self, rows: dict[tuple, Row], key: tuple, base_key: tuple) -> list[Pairwise]:
        """Model ``key`` against model ``base_key`` (two keys of ``rows``) in every column both have: their
        cells and the paired comparison, as the leaderboard computes them against the pre-trained model."""
        out = []
        for col in self.columns():
            for k in (key, base_key):
                data = self.score_data(k, rows[k]) if col.key == SUPERB else self.eval_data(k, rows[k], col)
                if data is not None:
                    self.data[(k, col.key)] = data
            present = [k for k in (key, base_key) if (k, col.key) in self.data]
            self.bootstrap_column(present, col)
            cmp = self.compare_column({key: base_key}, col).get(key) if len(present) == 2 else None
            if cmp is None:
                continue
            model, base = (replace(self.cell(self.data[(k, col.key)]), digits=col.digits) for k in (key, base_key))
            out.append(Pairwise(col, model, base, replace(cmp, digits=col.digits)))
        adjusted = self.adjusted([p.comparison for p in out])
        return [replace(p, comparison=cmp) for p, cmp in zip(out, adjusted, strict=True)]

    def adjusted(self, comparisons: list[Comparison]) -> list[Comparison]:
        """One table's comparisons with their p-values adjusted for testing them all (``Settings.adjust``;
        the item tests and the seed tests each as one family) and their marks decided again."""
        s = self.settings
        if s.adjust == "none":
            return comparisons
        p_items = stats.adjust_pvalues([c.p_items for c in comparisons], s.adjust)
        p_seeds = stats.adjust_pvalues([c.p_seeds for c in comparisons], s.adjust)
        return [replace(c, p_items=pi, p_seeds=ps, significant=_significant(pi, ps, s.threshold))
                for c, pi, ps in zip(comparisons, p_items, p_seeds, strict=True)]

    def columns(self) -> list[Column]:
        found: dict[str, Column] = {}
        first: dict[str, int] = {}
        for stage in in_recipe_order(self.evals):  # two entries of one task: in recipe order
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

        ranks = {task: task_rank(self.plugins, task) for task in {c.task for c in found.values()}}

        def rank(col: Column) -> tuple:
            return (*ranks[col.task], first[col.downstream])

        cols = sorted(found.values(), key=rank)  # stable: metrics keep their first-seen order
        if any(m.metric == "score" for s in self.scores for m in self.metrics.get(s.key, [])):
            cols.append(Column(SUPERB, "", "superb", "score", "higher"))
        return cols

    def runs(self, key: tuple, downstream: str) -> dict[int, StageRow]:
        return dict(self.eval_index.get(key, {}).get(downstream, {}))

    def metric_row(self, stage_key: str, metric: str, task: str | None = None) -> MetricRow | None:
        for m in self.metrics.get(stage_key, []):
            if m.metric == metric and (task is None or m.task == task):
                return m
        return None

    # -------------------------------------------------------------- what each cell resamples

    def eval_stats(self, runs: dict[int, str], metric: str, where: str) -> _Stats | None:
        """Per-item stats of one metric over the seeds' evaluate stages (seed -> stage key), or None
        (with a note) when they are missing or do not reproduce the stored values."""
        cache = (tuple(sorted(runs.items())), metric)
        if cache not in self._stats:
            self._stats[cache] = self._eval_stats(runs, metric, where)
        return self._stats[cache]

    def _eval_stats(self, runs: dict[int, str], metric: str, where: str) -> _Stats | None:
        per_seed = {}
        for seed, stage_key in runs.items():
            row = self.metric_row(stage_key, metric)
            items = self.items(row) if row else None
            if items is None:
                return None
            per_seed[seed] = items
        try:
            flat = stats.from_items(per_seed, metric)
            folds = {str(it["id"]): it["fold"] for it in next(iter(per_seed.values())) if "fold" in it}
        except (KeyError, TypeError, IndexError, ValueError) as exc:
            self.note(f"{where}: per-item results are malformed ({exc}); intervals use seeds only.")
            return None
        if flat.n_items == 0:
            self.note(f"{where}: per-item results carry no stats for {metric!r}; intervals use seeds only.")
            return None
        codes = flat.cluster_codes()
        if codes is not None and (groups := int(codes.max()) + 1) < MIN_CLUSTERS:
            self.note(f"{where}: the items come from only {groups} group{'' if groups == 1 else 's'} (ASV: enrolment "
                      f"speakers), too few to draw whole (at least {MIN_CLUSTERS}); the interval draws items one by "
                      "one and understates the spread between groups.")
            flat = flat.ungrouped()
        # ABX items carry only the conditions that apply to them: count those with this metric
        scored = [sum(1 for it in v if metric in it.get("stats", {})) for v in per_seed.values()]
        if max(scored) != flat.n_items:
            self.note(f"{where}: seeds were evaluated on different items; only the {flat.n_items} shared ones "
                      "enter the intervals.")
        strata: dict[str, stats.Resampled] = {}
        if folds and all(i in folds for i in flat.ids):
            # cross-validated results (ER's sessions): the metric is the mean of the folds' own values,
            # and the bootstrap resamples within each fold
            for fold in sorted(set(folds.values()), key=str):
                ids = [i for i in flat.ids if folds[i] == fold]
                strata[f"{FOLD_SEP}{fold}"] = flat.subset(ids, flat.seeds)
        else:
            strata[""] = flat
        values = np.mean([st.per_seed() for st in strata.values()], axis=0)
        for seed, value in zip(flat.seeds, values, strict=True):
            stored = self.metric_row(runs[seed], metric)
            if stored is not None and not _close(float(value), stored.value):
                self.note(f"{where}: per-item results give {value:.4g}, the store {stored.value:.4g} "
                          f"(seed {seed}); intervals use seeds only.")
                return None
        return _Stats(flat, strata)

    def eval_data(self, key: tuple, row: Row, col: Column) -> _Data | None:
        runs = {s: st for s, st in sorted(self.runs(key, col.downstream).items())
                if self.metric_row(st.key, col.metric) is not None}
        if not runs:
            return None
        per_seed = {s: self.metric_row(st.key, col.metric).value for s, st in runs.items()}
        n_items = self.metric_row(next(iter(runs.values())).key, col.metric).n_items
        st = self.eval_stats({s: st.key for s, st in runs.items()}, col.metric,
                             f"{row.upstream} / {row.model} / {col.label}")
        if st is None:
            return _Data(per_seed, n_items)
        return _Data(per_seed, st.flat.n_items, st.group(col.key), self.eval_combine, st.flat)

    def score_data(self, key: tuple, row: Row) -> _Data | None:
        runs = dict(sorted(self.score_index.get(key, {}).items()))
        per_seed = {seed: m.value for seed, st in runs.items()
                    if (m := self.metric_row(st.key, "score", "superb")) is not None}
        if not per_seed:
            return None
        group = self.score_group({s: runs[s] for s in per_seed}, f"{row.upstream} / {row.model} / SUPERB")
        if group is not None:
            recomputed = stats.observed(group, self.superb_combine)
            if not _close(recomputed, float(np.mean(list(per_seed.values())))):
                self.note(f"{row.upstream} / {row.model}: the SUPERB score recomputed from per-item results "
                          f"({recomputed:.4g}) differs from the stored one; its interval uses seeds only.")
                group = None
        return _Data(per_seed, None, group, self.superb_combine if group is not None else None)

    def score_coverage(self, key: tuple) -> tuple[int, int] | None:
        """(tasks scored, tasks of the reference) when a model's SUPERB score is partial, else None."""
        for stage in self.score_index.get(key, {}).values():
            data = self.stage_json(stage.key, "score.json") or {}
            if isinstance(data.get("tasks"), dict) and isinstance(data.get("table"), dict):
                return scoring.coverage(data["tasks"], data["table"])
        return None

    def score_group(self, runs: dict[int, StageRow], where: str) -> dict[str, stats.Resampled] | None:
        """Every metric behind a model's scores as per-item results over seeds (None, with a note, if unusable)."""
        by_name: dict[str, dict[int, str]] = {}  # metric -> seed -> evaluate stage key
        for seed, st in runs.items():
            fbank: dict[str, float] = {}
            directions: dict[str, str] = {}
            names = set()
            for role, eval_key in sorted(st.inputs.items()):
                for m in self.metrics.get(eval_key, []):
                    name = f"{m.task}.{m.metric}"
                    directions.setdefault(name, m.direction)
                    if role.startswith("reference."):
                        fbank[name] = m.value
                    elif role.startswith("eval."):
                        if self.items(m) is None:
                            self.note(f"{where}: {name} has no per-item results; the SUPERB interval is over "
                                      "seeds only.")
                            return None
                        by_name.setdefault(name, {})[seed] = eval_key
                        names.add(name)
            if names != set(by_name):
                return None
            if not self.add_scorer(seed, str(st.params.get("reference")), fbank, directions):
                return None
        group: dict[str, stats.Resampled] = {}
        for name, keys in by_name.items():
            st = self.eval_stats(keys, name.split(".", 1)[1], f"{where} ({name})")
            if st is None:
                return None
            group.update(st.group(name))
        return group or None

    def add_scorer(self, seed: int, reference: str, fbank: dict[str, float], directions: dict[str, str]) -> bool:
        signature = (reference, tuple(sorted(fbank.items())), tuple(sorted(directions.items())))
        if seed in self.scorer_keys:
            if self.scorer_keys[seed] != signature:
                self.note(f"score stages of seed {seed} use different references; SUPERB intervals of that seed "
                          "are over seeds only.")
                return False
            return True
        scorer = superb.make_scorer(reference, fbank, directions)
        if scorer is None:
            self.note("the SUPERB scorer cannot score this store's reference: SUPERB intervals are over seeds only.")
            return False
        self.scorers[seed] = scorer
        self.scorer_keys[seed] = signature
        return True

    def layer_weights(self, key: tuple, row: Row) -> None:
        for downstream in self.eval_index.get(key, {}):
            curves = []
            for stage in self.runs(key, downstream).values():
                data = self.stage_json(stage.key, "metrics.json") or {}
                weights = data.get("layer_weights")
                if weights:
                    curves.append([float(w) for w in weights])
            if curves and len({len(c) for c in curves}) == 1:
                row.layer_weights[downstream] = [float(v) for v in np.mean(curves, axis=0)]

    # -------------------------------------------------------------- intervals

    def bootstrap_column(self, keys: list[tuple], col: Column) -> None:
        """Bootstrap every model of a column at once: models on the same items and seeds share draws."""
        batches: dict[tuple, list[_Data]] = {}
        for key in keys:
            data = self.data[(key, col.key)]
            if data.group is not None:
                batches.setdefault(data.signature(), []).append(data)
        s = self.settings
        for batch in batches.values():
            reps = stats.bootstrap_replicates([d.group for d in batch], batch[0].combine, s.n_resamples, s.seed)
            for data, rep in zip(batch, reps, strict=True):
                data.replicates = rep

    def cell(self, data: _Data) -> Cell:
        level = self.settings.level
        mean = float(np.mean(list(data.per_seed.values())))
        ci: stats.Interval | None
        if data.replicates is not None:
            ci = stats.percentile_interval(data.replicates, level)
            kind = "items+seeds" if len(data.per_seed) > 1 else "items"
        else:
            ci = stats.seed_interval(list(data.per_seed.values()), level)
            kind = "seeds" if ci is not None else ""
        return Cell(mean, ci.low if ci else None, ci.high if ci else None, kind, dict(data.per_seed), data.n_items)

    # -------------------------------------------------------------- comparisons

    def compare_column(self, pairs: dict[tuple, tuple], col: Column) -> dict[tuple, Comparison]:
        """Each model (key) against its baseline (value: the pre-trained or the fully fine-tuned model) in one
        column: paired bootstrap, permutation and seed tests, for the models both have a cell of."""
        s = self.settings
        pending: dict[tuple, list[tuple[tuple, Any, Any]]] = {}  # permutation batches
        results: dict[tuple, dict[str, Any]] = {}
        for key, base_key in pairs.items():
            data, base = self.data.get((key, col.key)), self.data.get((base_key, col.key))
            if data is None or base is None:
                continue
            seeds = sorted(set(data.per_seed) & set(base.per_seed))
            if not seeds:
                continue
            a, b = [data.per_seed[x] for x in seeds], [base.per_seed[x] for x in seeds]
            out = results[key] = {"p_seeds": stats.seed_ttest(a, b), "n_seeds": len(seeds), "p_items": None}
            aligned = self.aligned(data, base)
            if aligned is None:
                diffs = [x - y for x, y in zip(a, b, strict=True)]
                ci = stats.seed_interval(diffs, s.level)
                out.update(delta=float(np.mean(diffs)), low=ci.low if ci else None, high=ci.high if ci else None)
                continue
            model_g, base_g = aligned
            delta = stats.observed(model_g, data.combine) - stats.observed(base_g, data.combine)
            unchanged = all(model_g[n].ids == data.group[n].ids and model_g[n].seeds == data.group[n].seeds
                            and base_g[n].ids == base.group[n].ids and base_g[n].seeds == base.group[n].seeds
                            for n in model_g)
            if unchanged and data.replicates is not None and data.signature() == base.signature():
                paired = stats.paired_from_replicates(data.replicates, base.replicates, delta, s.level)
            else:
                paired = stats.paired_bootstrap(model_g, base_g, data.combine, s.level, s.n_resamples, s.seed)
            out.update(delta=paired.delta, low=paired.interval.low, high=paired.interval.high)
            if not all(g.permutable for g in (*model_g.values(), *base_g.values())):
                out.update(p_items=paired.pvalue, items_test="bootstrap")  # an EER or MTWV: see stats
                continue
            batch = (id(data.combine), tuple((n, g.n_items) for n, g in model_g.items()))
            pending.setdefault(batch, []).append((key, model_g, base_g))
        for batch in pending.values():
            tests = stats.permutation_tests([(m, b) for _, m, b in batch], self.data[(batch[0][0], col.key)].combine,
                                            s.n_permutations, s.seed)
            for (key, _, _), test in zip(batch, tests, strict=True):
                results[key]["p_items"] = test.pvalue
        out: dict[tuple, Comparison] = {}
        for key, r in results.items():
            better = r["delta"] < 0 if col.direction == "lower" else r["delta"] > 0
            out[key] = Comparison(r["delta"], r["low"], r["high"], r["p_items"], r["p_seeds"], r["n_seeds"],
                                  _significant(r["p_items"], r["p_seeds"], s.threshold), better,
                                  items_test=r.get("items_test", "permutation"))
        return out

    def aligned(self, data: _Data, base: _Data) -> tuple[dict, dict] | None:
        """Both models' stats on their shared items and seeds, or None when they cannot be paired."""
        if data.group is None or base.group is None or set(data.group) != set(base.group):
            return None
        if data.combine is not base.combine:
            return None
        try:
            pairs = {n: stats.align(data.group[n], base.group[n]) for n in data.group}
        except ValueError:
            return None
        for n, (a, _) in pairs.items():
            if a.n_items < min(data.group[n].n_items, base.group[n].n_items):
                self.note(f"{n}: a model and its baseline share {a.n_items} items; the paired tests use those.")
        return {n: p[0] for n, p in pairs.items()}, {n: p[1] for n, p in pairs.items()}

    def abx_spread(self, key: tuple, row: Row, base_key: tuple | None, col: Column) -> None:
        data = self.data.get((key, col.key))
        if data is None or data.flat is None:
            return
        own = data.flat
        paired = None
        base = self.data.get((base_key, col.key)) if base_key is not None else None
        if base is not None and base.flat is not None:
            paired = stats.paired_delta_value_std(own, base.flat)
        row.abx[col.key] = AbxSpread(own.n_items, stats.delta_value_std(own), paired)


def build(output: Path, settings: Settings | None = None, plugins: PluginManager | None = None) -> Leaderboard:
    """Read the results store of an output folder and compute every cell, interval and test.

    ``plugins`` (the installed ones by default) give the downstream plugins' column order.
    """
    return builder_for(output, settings, plugins).build()


def builder_for(output: Path, settings: Settings | None = None, plugins: PluginManager | None = None) -> _Builder:
    """A builder over the finished evaluations and scores of an output folder (see :func:`build`)."""
    output = Path(output)
    if not (output / DB_NAME).is_file():
        raise HarnessError(f"{output} holds no results store ({DB_NAME}); give the output folder of `harness run`.")
    with Store(output, readonly=True) as store:
        stages = [s for s in store.stages(status="done") if s.kind in (StageKind.EVALUATE, StageKind.SCORE)]
        metrics: dict[str, list[MetricRow]] = {}
        for m in store.metrics():
            metrics.setdefault(m.stage, []).append(m)
    if not stages:
        raise HarnessError(f"the store in {output} holds no finished evaluate or score stage yet; "
                           "run a recipe to completion first.")
    return _Builder(output, stages, metrics, settings or Settings(), plugins or default_manager())
