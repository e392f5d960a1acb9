"""The training curves of a run's fine-tunings (``curves/*.jsonl`` in each finetune stage folder, written
by :mod:`harness.training.loop`), read and drawn: loss per step, and dev metrics where they were measured."""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

from harness.core.stage_kinds import StageKind
from harness.core.store import DB_NAME, Store
from harness.report import plots
from harness.report.stage_order import in_recipe_order


@dataclass
class Curve:
    """One training run of a fine-tuning stage."""

    label: str  # "<upstream> · <finetune> (seed N)", plus the run's name when a stage trained several times
    steps: list[int] = field(default_factory=list)
    loss: list[float | None] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    dev: dict[str, list[tuple[int, float | None]]] = field(default_factory=dict)  # metric -> (step, value)


def read_curve(path: Path, label: str) -> Curve:
    curve = Curve(label)
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        rec: dict[str, Any] = json.loads(line)
        if "dev" in rec:
            for name, value in rec["dev"].items():
                curve.dev.setdefault(name, []).append((int(rec["step"]), value))
        else:
            curve.steps.append(int(rec["step"]))
            curve.loss.append(rec.get("loss"))
            curve.lr.append(rec.get("lr"))
    return curve


def finetune_curves(output: Path) -> list[Curve]:
    """Every fine-tuning stage's curves in ``output`` (none when the store or the files are missing)."""
    output = Path(output)
    if not (output / DB_NAME).is_file():
        return []
    with Store(output, readonly=True) as store:
        stages = store.stages(kind=StageKind.FINETUNE, status="done")
    out = []
    for stage in in_recipe_order(stages):  # panels in plan order, as a sequential run starts them
        files = sorted((output / stage.key / "curves").glob("*.jsonl"))
        base = f"{stage.labels.get('upstream', '')} · {stage.labels.get('finetune', stage.plugin)} " \
               f"(seed {stage.labels.get('seed', 0)})"
        for file in files:
            label = base if len(files) == 1 else f"{base} {file.stem}"
            try:
                out.append(read_curve(file, label))
            except (OSError, ValueError, KeyError):
                continue
    return out


def curves_figure(curves: list[Curve]) -> plots.Figure:
    """One panel per training run: the loss per step (a moving average over about 2 % of the steps, the raw
    values faint) and each dev metric on the right axis."""
    n = len(curves)
    cols = min(n, 2)
    rows = math.ceil(n / cols)
    with matplotlib.rc_context(plots.STYLE):
        fig = plots.Figure(figsize=(5.2 * cols, 2.8 * rows), layout="constrained")
        for k, curve in enumerate(curves):
            ax = fig.add_subplot(rows, cols, k + 1)
            points = [(s, v) for s, v in zip(curve.steps, curve.loss, strict=True) if v is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, color=plots.PALETTE[0], alpha=0.25, lw=0.8)
                width = max(1, len(ys) // 50)
                smooth = [sum(ys[max(0, i - width + 1): i + 1]) / len(ys[max(0, i - width + 1): i + 1])
                          for i in range(len(ys))]
                ax.plot(xs, smooth, color=plots.PALETTE[0], lw=1.5, label="training loss")
            ax.set_xlabel("step")
            ax.set_ylabel("loss")
            ax.set_title(curve.label)
            if curve.dev:
                right = ax.twinx()
                for j, (name, values) in enumerate(sorted(curve.dev.items())):
                    shown = [(s, v) for s, v in values if v is not None]
                    if shown:
                        right.plot(*zip(*shown, strict=True), marker="o", ms=3, lw=1.2,
                                   color=plots.PALETTE[(j + 1) % len(plots.PALETTE)], label=f"dev {name}")
                right.set_ylabel("dev")
                right.grid(False)
                right.legend(frameon=False, fontsize=7, loc="upper right")
    return fig


def curves_html(outputs: Sequence[Path | str]) -> str | None:
    """The HTML figure of the fine-tunings' curves of the output folders (None when there are none)."""
    curves = [curve for output in outputs for curve in finetune_curves(Path(output))]
    if not curves:
        return None
    data = base64.b64encode(plots.svg(curves_figure(curves)).encode()).decode("ascii")
    caption = ("Loss per optimizer step (faint: raw; solid: moving average) and the dev metrics where they were "
               "measured, per fine-tuning run; the data is in each finetune stage folder's curves/*.jsonl.")
    return (f'<figure><img class="plot" alt="training curves" src="data:image/svg+xml;base64,{data}">'
            f"<figcaption><b>Training curves.</b> {html.escape(caption)}</figcaption></figure>")
