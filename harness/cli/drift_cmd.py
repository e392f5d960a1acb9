"""`harness drift DIR`: how far each model of a run moved from its pre-trained model, in weights (relative
change per block) and in representations (linear CKA with θ0 per hidden state); see
:mod:`harness.report.drift`."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.core.errors import HarnessError
from harness.core.registry import default_manager
from harness.models.model_io import model_device
from harness.report.drift import DriftReport, ModelDrift, model_drift
from harness.report.result_rows import open_store


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
    parser.add_argument("--device", default="cpu", metavar="DEVICE", help="cpu (default), auto, cuda or cuda:N")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
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

        figure = drift_figure([(d.model.full_label, d.weights, d.cka) for d in report.models])
        if args.plot.suffix.lower() == ".svg":
            args.plot.write_text(svg(figure), encoding="utf-8")
        else:
            args.plot.write_bytes(png(figure))
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
        return 0
    print_report(report, Console(highlight=False))
    return 0


def _cell(value: float, percent: bool) -> str:
    if math.isnan(value):
        return "–"
    return f"{100 * value:.2f}" if percent else f"{value:.3f}"


def print_report(report: DriftReport, console: Console) -> None:
    """Two tables: the relative weight change per block, and the CKA with θ0 per hidden state."""
    blocks = list(dict.fromkeys(b for d in report.models for b in d.weights))
    several = len({d.model.upstream for d in report.models}) > 1  # the leaderboard's labels

    def label(d: ModelDrift) -> str:
        return d.model.full_label if several else d.model.label

    weights = Table(title="weight change from the pre-trained model, ‖θ − θ0‖ / ‖θ0‖ (%)")
    weights.add_column("model")
    weights.add_column("seed", justify="right")
    for block in blocks:
        weights.add_column(block, justify="right")
    for d in report.models:
        weights.add_row(label(d), "" if d.model.seed is None else str(d.model.seed),
                        *[_cell(d.weights[b], True) if b in d.weights else "" for b in blocks])
    console.print(weights)
    states = max((len(d.cka) for d in report.models), default=0)
    cka = Table(title=f"linear CKA with the pre-trained model by hidden state ({report.utterances} utterances of "
                      f"{report.corpus} {report.split}, {report.frames} frames)")
    cka.add_column("model")
    cka.add_column("seed", justify="right")
    for i in range(states):
        cka.add_column(str(i), justify="right")
    cka.add_column("mean", justify="right")
    for d in report.models:
        mean = sum(d.cka) / len(d.cka) if d.cka else float("nan")
        cka.add_row(label(d), "" if d.model.seed is None else str(d.model.seed),
                    *[_cell(v, False) for v in d.cka], *[""] * (states - len(d.cka)), _cell(mean, False))
    console.print(cka)
    console.print("hidden state 0 is the input of the first layer; i is the output of layer i. CKA 1: the same "
                  "representation up to rotation and scale.")
