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

What each cell resamples is read by :mod:`harness.report.leaderboard.cell_data` (folds included), the
rows and their order come from :mod:`harness.report.leaderboard.rows`.

The SUPERB score's interval comes from resampling the items of all its tasks jointly through
:mod:`harness.report.leaderboard.superb` when every task saved per-item results and the recomputed
score matches the stored one; otherwise it is a Student-t interval over seeds (2 seeds or more).

Columns follow each downstream plugin's declared ``order`` (tasks whose plugin is not installed come
last, by name). :func:`build` reads the store; :func:`harness.report.leaderboard.dispatch.render` writes
``md``, ``csv``, ``html`` or ``json``.
"""


from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.registry import PluginManager, default_manager
from harness.core.result_rows import distinct_outputs
from harness.report import stats
from harness.report.leaderboard.cell_data import CellData, CellReader, setting_difference
from harness.report.leaderboard.dev_choice import dev_score, sweep_choices
from harness.report.leaderboard.model import (
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
from harness.report.leaderboard.rows import finetuned_pairs, model_rows, task_rank
from harness.report.leaderboard.stores import StoreContents, read_stores
from harness.report.stage_order import in_recipe_order


def _significant(p_items: float | None, p_seeds: float | None, threshold: float) -> bool:
    """Marked when every test that applies gives p below the threshold (and one applies)."""
    tests = [p for p in (p_items, p_seeds) if p is not None]
    return bool(tests) and all(p < threshold for p in tests)


class _Builder:
    """The leaderboard of one store (or several read as one): its rows and columns, every cell's interval and every
    comparison."""

    def __init__(self, outputs: list[Path], contents: StoreContents, settings: Settings, plugins: PluginManager):
        self.outputs = outputs
        self.settings = settings
        self.plugins = plugins
        self.reader = CellReader(contents.stages, contents.metrics, contents.folders, contents.planned)
        self.notes = self.reader.notes
        self.data: dict[tuple[tuple, str], CellData] = {}  # (row key, column key)

    def build(self) -> Leaderboard:
        ordered = self.rows()
        columns = self.columns()
        for key, row in ordered.items():
            for col in columns:
                self.read_cell(key, row, col)
            self.reader.layer_weights(key, row)
        for col in columns:
            self.bootstrap_column([key for key in ordered if (key, col.key) in self.data], col)
        for key, row in ordered.items():
            for col in columns:
                if (key, col.key) in self.data:
                    row.cells[col.key] = replace(self.cell(self.data[(key, col.key)]), digits=col.digits)
                    if col.key == SUPERB:
                        row.cells[col.key].covers = self.reader.score_coverage(key)
                        row.dev_superb = dev_score(self.reader, key)
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
            self.reader.note("no pre-trained model in the store (recipe baseline off): no significance tests.")
        reference = next((str(s.params.get("reference")) for s in self.reader.scores), None)
        folders = [str(o) for o in self.outputs]
        rows = list(ordered.values())
        return Leaderboard(", ".join(folders), columns, rows, self.settings, reference, self.notes, folders,
                           sweep_choices=sweep_choices(rows))

    def read_cell(self, key: tuple, row: Row, col: Column) -> None:
        reader = self.reader
        data = reader.score_data(key, row) if col.key == SUPERB else reader.eval_data(key, row, col)
        if data is not None:
            self.data[(key, col.key)] = data

    def rows(self) -> dict[tuple, Row]:
        return model_rows([*self.reader.evals, *self.reader.scores])

    def compare_pair(self, rows: dict[tuple, Row], key: tuple, base_key: tuple) -> list[Pairwise]:
        """Model ``key`` against model ``base_key`` (two keys of ``rows``) in every column both have: their
        cells and the paired comparison, as the leaderboard computes them against the pre-trained model."""
        out = []
        for col in self.columns():
            for k in (key, base_key):
                self.read_cell(k, rows[k], col)
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
        for stage in in_recipe_order(self.reader.evals):  # two entries of one task: in recipe order
            downstream = str(stage.labels["downstream"])
            task = str(stage.labels.get("task") or stage.plugin)
            first.setdefault(downstream, len(first))
            declared = list((self.reader.stage_json(stage.key, "metrics.json") or {}).get("metrics") or {})
            rows = sorted(self.reader.metrics.get(stage.key, []),
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
        if any(m.metric == "score" for s in self.reader.scores for m in self.reader.metrics.get(s.key, [])):
            cols.append(Column(SUPERB, "", "superb", "score", "higher"))
        return cols

    # -------------------------------------------------------------- intervals

    def bootstrap_column(self, keys: list[tuple], col: Column) -> None:
        """Bootstrap every model of a column at once: models on the same items and seeds share draws."""
        batches: dict[tuple, list[CellData]] = {}
        for key in keys:
            data = self.data[(key, col.key)]
            if data.group is not None:
                batches.setdefault(data.signature(), []).append(data)
        s = self.settings
        for batch in batches.values():
            reps = stats.bootstrap_replicates([d.group for d in batch], batch[0].combine, s.n_resamples, s.seed)
            for data, rep in zip(batch, reps, strict=True):
                data.replicates = rep

    def cell(self, data: CellData) -> Cell:
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
        unlike: list[tuple[CellData, CellData]] = []
        for key, base_key in pairs.items():
            data, base = self.data.get((key, col.key)), self.data.get((base_key, col.key))
            if data is None or base is None:
                continue
            if self.reader.settings(data) != self.reader.settings(base):  # a recipe changed between runs
                unlike.append((data, base))
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
        if unlike:
            self.note_unlike(col, unlike)
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

    def note_unlike(self, col: Column, unlike: list[tuple[CellData, CellData]]) -> None:
        data, base = unlike[0]
        reader = self.reader
        a, b = next(((x, y) for x in data.stages for y in base.stages if reader.setting(x) != reader.setting(y)),
                    (data.stages[0], base.stages[0]))
        difference = setting_difference(a, b, reader.eval_by_key)
        n = len(unlike)
        self.reader.note(f"{col.label}: {n} comparison{'s' if n > 1 else ''} left out, between models evaluated with "
                         f"different settings ({difference}); rerun the recipe so that every model is evaluated "
                         "alike, or give each setting its own output folder.")

    def aligned(self, data: CellData, base: CellData) -> tuple[dict, dict] | None:
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
                self.reader.note(f"{n}: a model and its baseline share {a.n_items} items; the paired tests use those.")
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


def build(output: Path | Sequence[Path], settings: Settings | None = None,
          plugins: PluginManager | None = None) -> Leaderboard:
    """Read the results store of an output folder (or of several, as one) and compute every cell, interval
    and test.

    ``plugins`` (the installed ones by default) give the downstream plugins' column order.
    """
    return builder_for(output, settings, plugins).build()


def builder_for(output: Path | Sequence[Path], settings: Settings | None = None,
                plugins: PluginManager | None = None) -> _Builder:
    """A builder over the finished evaluations and scores of an output folder or several (see :func:`build`)."""
    outputs = distinct_outputs(output)
    return _Builder(outputs, read_stores(outputs), settings or Settings(), plugins or default_manager())
