"""`harness drift`'s report as text: its two tables (weight change per block, CKA per hidden state) in
Markdown, HTML or on a terminal, and the series its figure draws, one row (and line) per model with the
mean over its seeds as the leaderboard shows them, or one per seed (``by_seed``). Works on the report's JSON
form (:meth:`harness.report.drift.DriftReport.to_dict`, one entry per model and seed), which the leaderboard
carries too, so nothing here loads a model."""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

#: the leaderboard's section of the report (`harness leaderboard --drift`)
TITLE = "How far each model moved from its pre-trained model"
#: how to read the CKA table
NOTE = ("Hidden state 0 is the input of the first layer; i is the output of layer i. CKA 1: the same representation "
        "up to rotation and scale.")


@dataclass
class TextTable:
    title: str
    header: list[str]
    rows: list[list[str]]


def _cell(value: float | None, percent: bool) -> str:
    if value is None:
        return "–"
    return f"{100 * value:.2f}" if percent else f"{value:.3f}"


def model_label(report: dict[str, Any], model: dict[str, Any]) -> str:
    """The leaderboard's label of a model (``upstream · label`` when the report has several upstreams), with
    its seed where the entry is one seed's of several."""
    models = report["models"]
    several = len({m["upstream"] for m in models}) > 1
    label = f"{model['upstream']} · {model['model']}" if several else model["model"]
    if "seeds" not in model and len({m["seed"] for m in models}) > 1:
        label += f", seed {model['seed']}"
    return label


def over_seeds(report: dict[str, Any]) -> dict[str, Any]:
    """The report with one entry per model (upstream and label) instead of one per model and seed: ``seeds``
    (those averaged) and the mean over them of each block's weight change and each hidden state's CKA (None
    where a seed has none)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for m in report["models"]:
        groups.setdefault((m["upstream"], m["model"]), []).append(m)
    models = []
    for (upstream, label), entries in groups.items():
        blocks = list(dict.fromkeys(b for m in entries for b in m["weight_change"]))
        states = max(len(m["cka"]) for m in entries)
        models.append({
            "model": label, "upstream": upstream, "seeds": [m["seed"] for m in entries],
            "weight_change": {b: _mean([m["weight_change"].get(b) for m in entries]) for b in blocks},
            "cka": [_mean([m["cka"][i] if i < len(m["cka"]) else None for m in entries]) for i in range(states)],
            "frames": entries[0]["frames"]})
    return {**report, "models": models}


def _shown(report: dict[str, Any], by_seed: bool) -> dict[str, Any]:
    return report if by_seed else over_seeds(report)


def reference_names(report: dict[str, Any]) -> tuple[str, str]:
    """How the tables name the model compared with, in words and as a symbol: the pre-trained model θ0, or the
    model the report was asked to compare with."""
    reference = report.get("reference")
    return ("the pre-trained model", "θ0") if reference is None else (reference, "θr")


def drift_tables(report: dict[str, Any], by_seed: bool = False) -> list[TextTable]:
    """The relative weight change per block, and the CKA with θ0 (or the reference) per hidden state, as text
    cells: a row per model with its seeds' mean (a ``seeds`` column counts them), or per seed (``seed``)."""
    shown = _shown(report, by_seed)
    models = shown["models"]
    name, symbol = reference_names(report)
    several = any(len(m.get("seeds", ())) > 1 for m in models)
    over = " (mean over seeds)" if several else ""

    def named(m: dict[str, Any]) -> list[str]:
        if not by_seed:
            return [model_label(shown, m), str(len(m["seeds"]))]
        return [model_label(shown, m), "" if m["seed"] is None else str(m["seed"])]

    seed_column = "seed" if by_seed else "seeds"
    blocks = list(dict.fromkeys(b for m in models for b in m["weight_change"]))
    weights = TextTable(f"Weight change from {name}, ‖θ − {symbol}‖ / ‖{symbol}‖ (%){over}",
                        ["model", seed_column, *blocks],
                        [[*named(m), *[_cell(m["weight_change"][b], True) if b in m["weight_change"] else ""
                                       for b in blocks]] for m in models])
    states = max((len(m["cka"]) for m in models), default=0)
    frames = {m["frames"] for m in models}
    counted = f", {frames.pop()} frames" if len(frames) == 1 else ""
    normed = " (layer-normed)" if report.get("layer_norm") else ""
    cka = TextTable(f"Linear CKA with {name} by hidden state{normed} ({report['utterances']} utterances of "
                    f"{report['corpus']} {report['split']}{counted}){over}",
                    ["model", seed_column, *map(str, range(states)), "mean"],
                    [[*named(m), *[_cell(v, False) for v in m["cka"]], *[""] * (states - len(m["cka"])),
                      _cell(_mean(m["cka"]), False)] for m in models])
    return [weights, cka]


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known and len(known) == len(values) else None


def drift_markdown(report: dict[str, Any], by_seed: bool = False) -> str:
    """The report's tables as Markdown, each under its title, and the note on hidden states."""
    parts = []
    for table in drift_tables(report, by_seed):
        align = ["---", *["---:"] * (len(table.header) - 1)]
        lines = [f"**{table.title}**", "", "| " + " | ".join(table.header) + " |", "| " + " | ".join(align) + " |"]
        lines += ["| " + " | ".join(row) + " |" for row in table.rows]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + f"\n\n{NOTE}\n"


def _cells(tag: str, values: list[str]) -> str:
    """One row's cells; the first (the model) is text, the rest numbers."""
    return "".join(f"<{tag}{TEXT if i == 0 else ''}>{html.escape(v)}</{tag}>" for i, v in enumerate(values))


TEXT = ' class="text"'


def drift_html(report: dict[str, Any], by_seed: bool = False) -> str:
    """The report's tables as HTML (each with its title as caption) and the note."""
    out = []
    for table in drift_tables(report, by_seed):
        body = "".join(f"<tr>{_cells('td', row)}</tr>" for row in table.rows)
        out.append(f'<div class="wrap"><table><caption>{html.escape(table.title)}</caption><thead><tr>'
                   f"{_cells('th', table.header)}</tr></thead><tbody>{body}</tbody></table></div>")
    return "".join(out) + f'<p class="legend">{html.escape(NOTE)}</p>'


def drift_series(report: dict[str, Any], by_seed: bool = False
                 ) -> list[tuple[str, dict[str, float | None], list[float | None]]]:
    """Per model (or model and seed): its label, weight change per block, CKA per hidden state."""
    shown = _shown(report, by_seed)
    return [(model_label(shown, m), m["weight_change"], m["cka"]) for m in shown["models"]]


def figure_names(report: dict[str, Any]) -> dict[str, str]:
    """The figure's ``reference`` and ``symbol`` (:func:`harness.report.plots.drift_figure`)."""
    name, symbol = reference_names(report)
    return {"reference": symbol if report.get("reference") is None else name, "symbol": symbol}
