"""The leaderboard as text: markdown, CSV (one line per model and column) and JSON."""

from __future__ import annotations

import csv
import io
import json
import math

from harness.evaluation.scoring import coverage_text
from harness.report.drift_tables import TITLE as DRIFT_TITLE
from harness.report.drift_tables import drift_markdown
from harness.report.leaderboard.model import SUPERB, Cell, Comparison, Leaderboard, Row
from harness.report.leaderboard.text import (
    NO_PAPER_MATCH,
    PAPER_TITLE,
    SWEEP_TITLE,
    fmt,
    fmt_p,
    method_text,
    paper_table,
    seeds_text,
    sweep_table,
)


def fmt_cell(cell: Cell | None) -> str:
    """``mean [low, high]`` with `` *`` when the difference to the baseline is significant."""
    if cell is None:
        return "–"
    text = fmt(cell.mean, cell.digits)
    if cell.low is not None and cell.high is not None:
        text += f" [{fmt(cell.low, cell.digits)}, {fmt(cell.high, cell.digits)}]"
    if cell.vs_baseline is not None and cell.vs_baseline.significant:
        text += " *"
    return text + coverage_text(cell.covers)


def fmt_delta(cmp: Comparison | None) -> str:
    if cmp is None:
        return "–"
    text = fmt(cmp.delta, cmp.digits, sign=True)
    if cmp.low is not None and cmp.high is not None:
        text += f" [{fmt(cmp.low, cmp.digits, sign=True)}, {fmt(cmp.high, cmp.digits, sign=True)}]"
    return text + (" *" if cmp.significant else "")


def fmt_pvalues(cmp: Comparison | None) -> str:
    if cmp is None:
        return "–"
    parts = []
    if cmp.p_items is not None:
        parts.append(fmt_p(cmp.p_items) + (" (bootstrap)" if cmp.items_test == "bootstrap" else ""))
    if cmp.p_seeds is not None:
        parts.append(f"seeds {fmt_p(cmp.p_seeds)}")
    return " · ".join(parts) or "–"


def _md_table(header: list[str], rows: list[list[str]], right_from: int) -> list[str]:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    aligns = ["---" if k < right_from else "---:" for k in range(len(header))]
    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "|" + "|".join(aligns) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return lines


def render_markdown(lb: Leaderboard) -> str:
    text = method_text(lb)
    out = ["# Leaderboard", ""]
    ref = f" · SUPERB reference: {lb.reference}" if lb.reference else ""
    where = ", ".join(f"`{folder}`" for folder in lb.folders or [lb.source])
    out += [f"Results in {where} · {len(lb.rows)} models · {seeds_text(lb)}{ref}.", "", text["values"]]
    if any(c.key == SUPERB for c in lb.columns):
        out += ["", text["superb"]]
    out.append("")
    header = ["upstream", "model", "seeds"] + [f"{c.label} {c.arrow}" for c in lb.columns]
    rows = [[r.upstream, r.model, str(len(r.seeds))] + [fmt_cell(r.cells.get(c.key)) for c in lb.columns]
            for r in lb.rows]
    out += _md_table(header, rows, 2)
    for title, field, sentence in (("Against the pre-trained model", "vs_baseline", text["compare"]),
                                   ("Against the fully fine-tuned model (α = 1)", "vs_finetuned", text["finetuned"])):
        out += _md_compare(lb, title, field, sentence)
    if lb.sweep_choices:
        out += ["", f"## {SWEEP_TITLE}", "", text["sweeps"], "", *_md_table(*sweep_table(lb), 4)]
    if lb.paper is not None:
        out += ["", f"## {PAPER_TITLE}", "", text["paper"], ""]
        out += _md_table(*paper_table(lb), 3) if lb.paper else [NO_PAPER_MATCH]
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
    if lb.drift is not None:
        out += ["", f"## {DRIFT_TITLE}", "", drift_markdown(lb.drift).rstrip("\n")]
    if lb.notes:
        out += ["", "## Notes", ""] + [f"- {n}" for n in lb.notes]
    return "\n".join(out) + "\n"


def _comparison(row: Row, key: str, field: str) -> Comparison | None:
    """A row's comparison in one column: ``field`` is ``vs_baseline`` or ``vs_finetuned``."""
    cell = row.cells.get(key)
    return getattr(cell, field) if cell is not None else None


def _md_compare(lb: Leaderboard, title: str, field: str, sentence: str) -> list[str]:
    """A section of Δ and p per column for the rows with a ``field`` comparison (none: no section)."""
    compared = [r for r in lb.rows if any(getattr(c, field) for c in r.cells.values())]
    if not compared:
        return []
    header = ["upstream", "model"]
    for c in lb.columns:
        header += [f"{c.label} Δ {c.arrow}", "p"]
    rows = []
    for r in compared:
        line = [r.upstream, r.model]
        for c in lb.columns:
            cmp = _comparison(r, c.key, field)
            line += [fmt_delta(cmp), fmt_pvalues(cmp)]
        rows.append(line)
    return ["", f"## {title}", "", sentence, "", *_md_table(header, rows, 2)]


CSV_FIELDS = ("upstream", "model", "finetune", "merge", "alpha", "seeds", "column", "direction", "mean",
              "ci_low", "ci_high", "interval", "n_items", "per_seed", "delta", "delta_low", "delta_high",
              "p_items", "p_items_test", "p_seeds", "significant", "delta_value_std", "paired_delta_value_std",
              "ft_delta", "ft_delta_low", "ft_delta_high", "ft_p_items", "ft_p_items_test", "ft_p_seeds",
              "ft_significant")


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
            cmp, spread, ft = cell.vs_baseline, r.abx.get(c.key), cell.vs_finetuned
            writer.writerow({
                "upstream": r.upstream, "model": r.model, "finetune": r.finetune, "merge": r.merge,
                "alpha": num(r.alpha), "seeds": " ".join(map(str, r.seeds)), "column": c.key,
                "direction": c.direction, "mean": num(cell.mean), "ci_low": num(cell.low),
                "ci_high": num(cell.high), "interval": cell.interval,
                "n_items": "" if cell.n_items is None else cell.n_items,
                "per_seed": " ".join(f"{s}:{v!r}" for s, v in cell.per_seed.items()),
                "delta": num(cmp.delta) if cmp else "", "delta_low": num(cmp.low) if cmp else "",
                "delta_high": num(cmp.high) if cmp else "", "p_items": num(cmp.p_items) if cmp else "",
                "p_items_test": cmp.items_test if cmp and cmp.p_items is not None else "",
                "p_seeds": num(cmp.p_seeds) if cmp else "", "significant": str(cmp.significant) if cmp else "",
                "delta_value_std": num(spread.delta_value_std) if spread else "",
                "paired_delta_value_std": num(spread.paired_delta_value_std) if spread else "",
                "ft_delta": num(ft.delta) if ft else "", "ft_delta_low": num(ft.low) if ft else "",
                "ft_delta_high": num(ft.high) if ft else "", "ft_p_items": num(ft.p_items) if ft else "",
                "ft_p_items_test": ft.items_test if ft and ft.p_items is not None else "",
                "ft_p_seeds": num(ft.p_seeds) if ft else "", "ft_significant": str(ft.significant) if ft else "",
            })
    return buf.getvalue()


def render_json(lb: Leaderboard) -> str:
    return json.dumps(lb.to_dict(), indent=2, ensure_ascii=False) + "\n"
