"""Any two models of a run compared column by column (``harness compare``): both values with their
intervals, the paired-bootstrap interval of the difference and the paired tests, exactly as the
leaderboard compares a model with its pre-trained model (:mod:`harness.report.leaderboard.builder`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.core.registry import PluginManager
from harness.report.leaderboard.builder import builder_for
from harness.report.leaderboard.model import Pairwise, Row, Settings
from harness.report.leaderboard.text import fmt, fmt_p, short_label


@dataclass
class PairComparison:
    model: str
    baseline: str
    columns: list[Pairwise]
    settings: Settings
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "baseline": self.baseline,
            "settings": asdict(self.settings),
            "columns": [{"column": p.column.key, "direction": p.column.direction,
                         "model": _cell(p.model), "baseline": _cell(p.baseline),
                         "delta": p.comparison.delta, "delta_low": p.comparison.low, "delta_high": p.comparison.high,
                         "p_items": p.comparison.p_items, "p_items_test": p.comparison.items_test,
                         "p_seeds": p.comparison.p_seeds, "n_seeds": p.comparison.n_seeds,
                         "significant": p.comparison.significant, "better": p.comparison.better}
                        for p in self.columns],
            "notes": self.notes,
        }

    def table_rows(self) -> list[list[str]]:
        """Per column: metric, model, baseline, Δ (marked), its interval, p over items (``†``: paired
        bootstrap), p over seeds."""
        out = []
        for p in self.columns:
            cmp = p.comparison
            interval = "–"
            if cmp.low is not None and cmp.high is not None:
                interval = f"[{fmt(cmp.low, cmp.digits, sign=True)}, {fmt(cmp.high, cmp.digits, sign=True)}]"
            p_items = "–"
            if cmp.p_items is not None:
                p_items = fmt_p(cmp.p_items) + (" †" if cmp.items_test == "bootstrap" else "")
            out.append([f"{short_label(p.column)} {p.column.arrow}", fmt(p.model.mean, p.model.digits),
                        fmt(p.baseline.mean, p.baseline.digits),
                        fmt(cmp.delta, cmp.digits, sign=True) + (" *" if cmp.significant else ""), interval, p_items,
                        "–" if cmp.p_seeds is None else fmt_p(cmp.p_seeds)])
        return out


def _cell(cell: Any) -> dict[str, Any]:
    return {"mean": cell.mean, "low": cell.low, "high": cell.high, "interval": cell.interval,
            "per_seed": cell.per_seed, "n_items": cell.n_items}


def _full_label(row: Row) -> str:
    return f"{row.upstream} · {row.model}"


def _find(rows: dict[tuple, Row], which: str, where: str) -> tuple:
    """The key of the row that ``which`` names: its label, or ``upstream · label`` when several upstreams have it."""
    text = which.strip()
    matches = [k for k, r in rows.items() if text in (r.model, _full_label(r))]
    if not matches:
        shown = "; ".join(f'"{_full_label(r)}"' for r in rows.values())
        raise HarnessError(f"{where} has no evaluated model {which!r}; give one of {shown}.")
    if len(matches) > 1:
        shown = ", ".join(f'"{_full_label(rows[k])}"' for k in matches)
        raise HarnessError(f"{which!r} names a model of several upstreams; give one of {shown}.")
    return matches[0]


def compare(output: Path | Sequence[Path], model: str, against: str, settings: Settings | None = None,
            plugins: PluginManager | None = None) -> PairComparison:
    """Model ``model`` against model ``against`` of the run in ``output`` (or in several output folders read as
    one), by their leaderboard labels."""
    builder = builder_for(output, settings, plugins)
    rows = builder.rows()
    where = ", ".join(str(o) for o in builder.outputs)
    key, base_key = _find(rows, model, where), _find(rows, against, where)
    if key == base_key:
        raise HarnessError(f"{model!r} and {against!r} name the same model; give two different ones.")
    columns = builder.compare_pair(rows, key, base_key)
    if not columns:
        raise HarnessError(f"{_full_label(rows[key])!r} and {_full_label(rows[base_key])!r} share no evaluated "
                           "metric with common seeds; nothing to compare.")
    return PairComparison(_full_label(rows[key]), _full_label(rows[base_key]), columns, builder.settings,
                          builder.notes)
