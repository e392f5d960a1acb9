"""`harness drift DIR`: how far each model of a run moved from its pre-trained model, in weights (relative
change per block) and in representations (linear CKA with θ0 per hidden state); see
:mod:`harness.report.drift`."""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.core.errors import HarnessError
from harness.core.registry import default_manager
from harness.core.result_rows import open_store
from harness.models.model_io import model_device
from harness.report.drift import DriftReport, ModelDrift, model_drift

#: how to read the CKA table
NOTE = ("Hidden state 0 is the input of the first layer; i is the output of layer i. CKA 1: the same representation "
        "up to rotation and scale.")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "drift", help="how far each model moved from its pre-trained model: weight change and CKA per layer",
        description="Per evaluated model: ‖θ − θ0‖ / ‖θ0‖ per block (CNN, each layer, the rest) and the linear CKA "
                    "between each of its hidden states and θ0's on the first utterances of a corpus split.")
    parser.add_argument("output", type=Path, help="the output folder of `harness run`")
    parser.add_argument("--corpus", help="a corpus the run prepared (default: the one most evaluations read)")
    parser.add_argument("--split", default="test", help="its split whose audio is compared (default: test)")
    parser.add_argument("--utterances", type=int, default=100, metavar="N",
                        help="the first N utterances of the split (default 100)")
    parser.add_argument("--device", default="auto", metavar="DEVICE",
                        help="where the models run: auto (the GPU when there is one; default), cpu, cuda or cuda:N")
    parser.add_argument("--format", choices=["table", "md", "json"], default="table",
                        help="tables on the terminal (default), Markdown, or JSON")
    parser.add_argument("--plot", type=Path, metavar="FILE",
                        help="also draw both measures by layer (.png or .svg)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.utterances < 1:
        raise HarnessError(f"--utterances {args.utterances} compares no audio; give 1 or more.")
    if args.plot is not None and args.plot.suffix.lower() not in (".png", ".svg"):
        raise HarnessError(f"--plot {args.plot} names no figure format; end it in .png or .svg.")
    open_store(args.output).close()  # one sentence when the folder holds no store
    report = model_drift(args.output, default_manager(), corpus=args.corpus, split=args.split,
                         utterances=args.utterances, device=model_device(args.device))
    if args.plot is not None:
        from harness.report.plots import drift_figure, png, svg

        figure = drift_figure([(model_label(report, d, with_seed=True), d.weights, d.cka) for d in report.models])
        if args.plot.suffix.lower() == ".svg":
            args.plot.write_text(svg(figure), encoding="utf-8")
        else:
            args.plot.write_bytes(png(figure))
    if args.format == "json":
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    elif args.format == "md":
        print(markdown(report), end="")
    else:
        print_report(report, Console(highlight=False))
    return 0


def _cell(value: float, percent: bool) -> str:
    if math.isnan(value):
        return "–"
    return f"{100 * value:.2f}" if percent else f"{value:.3f}"


@dataclass
class _Table:
    title: str
    header: list[str]
    rows: list[list[str]]


def model_label(report: DriftReport, drift: ModelDrift, with_seed: bool = False) -> str:
    """The leaderboard's label of a model (``upstream · label`` when the report has several upstreams), and
    its seed where asked and the report has several."""
    models = report.models
    label = drift.model.full_label if len({d.model.upstream for d in models}) > 1 else drift.model.label
    if with_seed and len({d.model.seed for d in models}) > 1:
        label += f", seed {drift.model.seed}"
    return label


def report_tables(report: DriftReport) -> list[_Table]:
    """The relative weight change per block, and the CKA with θ0 per hidden state, as text cells."""
    def named(d: ModelDrift) -> list[str]:
        return [model_label(report, d), "" if d.model.seed is None else str(d.model.seed)]

    blocks = list(dict.fromkeys(b for d in report.models for b in d.weights))
    weights = _Table("Weight change from the pre-trained model, ‖θ − θ0‖ / ‖θ0‖ (%)", ["model", "seed", *blocks],
                     [[*named(d), *[_cell(d.weights[b], True) if b in d.weights else "" for b in blocks]]
                      for d in report.models])
    states = max((len(d.cka) for d in report.models), default=0)
    frames = f", {report.frames} frames" if report.frames is not None else ""
    cka = _Table(f"Linear CKA with the pre-trained model by hidden state ({report.utterances} utterances of "
                 f"{report.corpus} {report.split}{frames})",
                 ["model", "seed", *map(str, range(states)), "mean"],
                 [[*named(d), *[_cell(v, False) for v in d.cka], *[""] * (states - len(d.cka)),
                   _cell(sum(d.cka) / len(d.cka) if d.cka else math.nan, False)] for d in report.models])
    return [weights, cka]


def print_report(report: DriftReport, console: Console) -> None:
    """The report's tables on a terminal."""
    for table in report_tables(report):
        shown = Table(title=table.title)
        for i, name in enumerate(table.header):
            shown.add_column(name, justify="left" if i == 0 else "right")
        for row in table.rows:
            shown.add_row(*row)
        console.print(shown)
    console.print(NOTE)


def markdown(report: DriftReport) -> str:
    """The report's tables as Markdown, each under its title, and the note on hidden states."""
    parts = []
    for table in report_tables(report):
        align = ["---", *["---:"] * (len(table.header) - 1)]
        lines = [f"**{table.title}**", "", "| " + " | ".join(table.header) + " |", "| " + " | ".join(align) + " |"]
        lines += ["| " + " | ".join(row) + " |" for row in table.rows]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + f"\n\n{NOTE}\n"
