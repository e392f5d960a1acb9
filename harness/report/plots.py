"""Leaderboard figures (matplotlib, Agg): SUPERB score against α, learned layer weights, per-task bars; and
``harness drift``'s weight change and CKA by layer.

The functions take plain data and return a :class:`matplotlib.figure.Figure`; :func:`svg` and
:func:`png` encode one (deterministically) for embedding or saving.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402  (after choosing the backend)
from matplotlib.ticker import MaxNLocator  # noqa: E402

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22")
BASELINE_COLOR = "#9aa0a6"
GOOD, BAD = "#1a7f37", "#cf222e"
STYLE = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "svg.fonttype": "none",
    "svg.hashsalt": "harness-leaderboard",
}


@dataclass
class Series:
    """One line: points (x, y) with optional interval ends (None where unknown)."""

    label: str
    x: list[float]
    y: list[float]
    low: list[float | None] = field(default_factory=list)
    high: list[float | None] = field(default_factory=list)
    chosen: float | None = None  # the x chosen on the dev sets, ringed


@dataclass
class BarPanel:
    """One metric across models: values with optional intervals; ``baseline`` rows drawn in grey."""

    title: str
    direction: str
    labels: list[str]
    values: list[float]
    low: list[float | None]
    high: list[float | None]
    baseline: list[bool]
    significant: list[bool]
    better: list[bool] = field(default_factory=list)  # per row: the difference to the baseline is an improvement


def _figure(width: float, height: float) -> Figure:
    with matplotlib.rc_context(STYLE):
        return Figure(figsize=(width, height), layout="constrained")


def _yerr(values: Sequence[float], low: Sequence[float | None], high: Sequence[float | None]):
    """Asymmetric error bars ([2 × n]); zero length where the interval is unknown."""
    lo = [v - lw if lw is not None and math.isfinite(lw) else 0.0 for v, lw in zip(values, low, strict=True)]
    hi = [hg - v if hg is not None and math.isfinite(hg) else 0.0 for v, hg in zip(values, high, strict=True)]
    return [lo, hi]


def alpha_curve(series: Sequence[Series], ylabel: str = "SUPERB score") -> Figure:
    """Score against the merge coefficient α (0 = pre-trained, 1 = fine-tuned), one line per series; a ring marks
    each series' ``chosen`` α."""
    with matplotlib.rc_context(STYLE):
        fig = _figure(6.0, 3.6)
        ax = fig.add_subplot()
        for k, s in enumerate(series):
            low = s.low or [None] * len(s.x)
            high = s.high or [None] * len(s.x)
            ax.errorbar(s.x, s.y, yerr=_yerr(s.y, low, high), marker="o", capsize=3, lw=1.6,
                        color=PALETTE[k % len(PALETTE)], label=s.label)
            if s.chosen is not None and s.chosen in s.x:
                ax.plot([s.chosen], [s.y[s.x.index(s.chosen)]], marker="o", ms=13, mfc="none", mew=1.6, ls="none",
                        color=PALETTE[k % len(PALETTE)])
        ax.set_xlabel("α (0 = pre-trained, 1 = fine-tuned)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{ylabel} against the merge coefficient α")
        if series:
            ax.legend(frameon=False, fontsize=8)
    return fig


def layer_weights(panels: dict[str, dict[str, list[float]]]) -> Figure:
    """One panel per downstream: each model's learned layer weights (layer 0 = input of layer 1)."""
    n = max(1, len(panels))
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    models = list(dict.fromkeys(m for p in panels.values() for m in p))
    colors = {m: PALETTE[k % len(PALETTE)] for k, m in enumerate(models)}
    with matplotlib.rc_context(STYLE):
        fig = _figure(3.4 * cols, 2.6 * rows + 0.35 * math.ceil(len(models) / 3))
        axes = fig.subplots(rows, cols, squeeze=False)
        for ax, (name, curves) in zip(axes.flat, panels.items(), strict=False):
            for model, weights in curves.items():
                ax.plot(range(len(weights)), weights, marker=".", lw=1.4, color=colors[model], label=model)
            ax.set_title(name)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("layer")
            ax.set_ylabel("weight")
        for ax in list(axes.flat)[len(panels):]:
            ax.set_visible(False)
        handles, labels = axes.flat[0].get_legend_handles_labels()
        by_label = dict(zip(labels, handles, strict=True))
        for ax in list(axes.flat)[1:len(panels)]:
            for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
                by_label.setdefault(label, h)
        fig.legend(list(by_label.values()), list(by_label), loc="outside lower center", ncols=3, frameon=False,
                   fontsize=8)
    return fig


def drift_figure(models: Sequence[tuple[str, dict[str, float | None], list[float | None]]],
                 reference: str = "θ0", symbol: str = "θ0") -> Figure:
    """Two panels, one line per model ``(label, weight change per block, CKA per hidden state)``: the relative
    weight change by block (in %) and the linear CKA with ``reference`` (the pre-trained model θ0, or the model
    ``symbol`` stands for) by hidden state."""
    blocks = [b for b in dict.fromkeys(b for _, w, _ in models for b in w) if b != "all"]
    with matplotlib.rc_context(STYLE):
        fig = _figure(8.0, 3.2 + 0.3 * math.ceil(len(models) / 2))
        moved, similar = fig.subplots(1, 2)
        for k, (label, weights, cka) in enumerate(models):
            color = PALETTE[k % len(PALETTE)]
            changes = [weights.get(b) for b in blocks]
            moved.plot(range(len(blocks)), [math.nan if v is None else 100 * v for v in changes], marker="o", lw=1.4,
                       color=color, label=label)
            similar.plot(range(len(cka)), [math.nan if v is None else v for v in cka], marker="o", lw=1.4, color=color)
        moved.set_xticks(range(len(blocks)), blocks, rotation=45, ha="right")
        moved.set_ylabel(f"‖θ − {symbol}‖ / ‖{symbol}‖ (%)")
        moved.set_title("weight change")
        similar.xaxis.set_major_locator(MaxNLocator(integer=True))
        similar.set_xlabel("hidden state")
        similar.set_ylabel("linear CKA")
        similar.set_title("representation similarity")
        fig.suptitle(f"against {reference}", fontsize=10)
        fig.legend(loc="outside lower center", ncols=2, frameon=False, fontsize=8)
    return fig


def task_bars(panels: Sequence[BarPanel]) -> Figure:
    """One horizontal bar chart per metric with interval whiskers; * marks p < 0.05 (green: better).

    Every panel puts a model on the same row, so the model names are written once, left of each row of
    panels, and the others show only bars.
    """
    n = max(1, len(panels))
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    labels = list(dict.fromkeys(lb for p in panels for lb in p.labels)) or [""]
    position = {lb: len(labels) - 1 - k for k, lb in enumerate(labels)}  # first model on top
    label_len = max(len(lb) for lb in labels)
    with matplotlib.rc_context(STYLE):
        fig = _figure(cols * 2.6 + 0.06 * label_len, rows * (0.9 + 0.28 * len(labels)))
        axes = fig.subplots(rows, cols, squeeze=False, sharey=True)
        for k, (ax, panel) in enumerate(zip(axes.flat, panels, strict=False)):
            ys = [position[lb] for lb in panel.labels]
            colors = [BASELINE_COLOR if b else PALETTE[0] for b in panel.baseline]
            ax.barh(ys, panel.values, color=colors, height=0.65,
                    xerr=_yerr(panel.values, panel.low, panel.high), error_kw={"capsize": 2, "lw": 1})
            ax.set_yticks(list(position.values()), list(position))
            ax.tick_params(axis="y", labelleft=k % cols == 0)
            ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
            arrow = "↓" if panel.direction == "lower" else "↑"
            ax.set_title(f"{panel.title} {arrow}")
            ax.grid(axis="y", visible=False)
            finite = [v for v in (*panel.values, *(h for h in panel.high if h is not None)) if math.isfinite(v)]
            top = max(finite, default=1.0)
            better = panel.better or [True] * len(ys)
            for y, v, hi, sig, good in zip(ys, panel.values, panel.high, panel.significant, better, strict=True):
                if sig:
                    x = hi if hi is not None and math.isfinite(hi) else v
                    ax.text(x + 0.01 * abs(top), y, "*", va="center", ha="left", fontsize=11,
                            color=GOOD if good else BAD)
        for ax in list(axes.flat)[len(panels):]:
            ax.set_visible(False)
    return fig


def svg(fig: Figure) -> str:
    """The figure as an SVG document (no creation date, stable ids)."""
    buf = io.StringIO()
    with matplotlib.rc_context(STYLE):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


def png(fig: Figure, dpi: int = 150) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()
