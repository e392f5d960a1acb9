"""The leaderboard's figures: SUPERB against α (the page's headline picture), per-task bars, learned layer
weights and `harness drift`'s figure, as matplotlib figures the HTML page embeds and ``--plots`` saves."""

from __future__ import annotations

from dataclasses import dataclass

from matplotlib.figure import Figure

from harness.report import plots
from harness.report.drift_tables import TITLE as DRIFT_TITLE
from harness.report.drift_tables import drift_series, figure_names
from harness.report.leaderboard.model import SUPERB, Leaderboard
from harness.report.leaderboard.rows import alpha_sweeps
from harness.report.leaderboard.text import short_label


@dataclass
class Plot:
    name: str  # file stem when saved
    title: str
    caption: str
    figure: Figure


def alpha_series(lb: Leaderboard) -> list[plots.Series]:
    """SUPERB score against α per upstream and fine-tuning (and merge method): the pre-trained model at
    α = 0, merges at their α, the unmerged fine-tuned model at α = 1; the α chosen on the dev sets ringed."""
    chosen = {(c.upstream, c.sweep): c.chosen for c in lb.sweep_choices if c.parameter == "α"}
    out = []
    for sweep in alpha_sweeps(lb.rows, SUPERB):
        xs = list(sweep.points)
        cells = [sweep.points[a].cells[SUPERB] for a in xs]
        out.append(plots.Series((f"{sweep.upstream} · " if lb.multi_upstream else "") + sweep.name, xs,
                                [c.mean for c in cells], [c.low for c in cells], [c.high for c in cells],
                                chosen.get((sweep.upstream, sweep.name))))
    return out


def bar_panels(lb: Leaderboard) -> list[plots.BarPanel]:
    panels = []
    for col in lb.columns:
        rows = [r for r in lb.rows if col.key in r.cells]
        if not rows:
            continue
        cells = [r.cells[col.key] for r in rows]
        panels.append(plots.BarPanel(
            title=short_label(col), direction=col.direction, labels=[lb.row_label(r) for r in rows],
            values=[c.mean for c in cells], low=[c.low for c in cells], high=[c.high for c in cells],
            baseline=[r.baseline for r in rows],
            significant=[bool(c.vs_baseline and c.vs_baseline.significant) for c in cells],
            better=[bool(c.vs_baseline and c.vs_baseline.better) for c in cells]))
    return panels


def weight_panels(lb: Leaderboard) -> dict[str, dict[str, list[float]]]:
    """Per downstream, each model's layer weights; upstreams with one hidden state (FBank: a single weight
    of 1) are left out, their flat point would only squash the others' curves."""
    panels: dict[str, dict[str, list[float]]] = {}
    for r in lb.rows:
        for downstream, weights in r.layer_weights.items():
            if len(weights) > 1:
                panels.setdefault(downstream, {})[lb.row_label(r)] = weights
    return panels


def figures(lb: Leaderboard) -> list[Plot]:
    """Every plot the data supports, in page order: SUPERB against α, the page's headline picture, first."""
    level = f"{round(lb.settings.level * 100)} %"
    out = []
    series = alpha_series(lb)
    if series:
        out.append(Plot("superb_vs_alpha", "SUPERB score against α", (
            f"Each point is the mean over seeds with its {level} interval; α = 0 is the pre-trained model, "
            "α = 1 the fine-tuned one (Stable-FT), values between are weight-space interpolations."
            + (" A ring marks the α chosen on the dev sets." if any(x.chosen is not None for x in series) else "")),
            plots.alpha_curve(series)))
    panels = bar_panels(lb)
    if panels:
        out.append(Plot("tasks", "Per-task results", (
            f"Mean over seeds with {level} intervals; grey bars are the pre-trained models, * marks p < "
            f"{lb.settings.threshold:g} against them."), plots.task_bars(panels)))
    weights = weight_panels(lb)
    if weights:
        out.append(Plot("layer_weights", "Learned layer weights", (
            "The weighted-sum featurizer's normalized weight of each hidden state (layer 0 is the input of "
            "the first transformer layer), mean over seeds."), plots.layer_weights(weights)))
    return out


def drift_plot(report: dict) -> Plot:
    """`harness drift`'s figure."""
    return Plot("drift", DRIFT_TITLE, "The weight change per block and the linear CKA with the pre-trained model per "
                "hidden state, one line per model.", plots.drift_figure(drift_series(report), **figure_names(report)))
