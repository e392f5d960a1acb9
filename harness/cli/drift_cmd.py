"""`harness drift DIR`: how far each model of a run moved from its pre-trained model, in weights (relative
change per block) and in representations (linear CKA with θ0 per hidden state); see
:mod:`harness.report.drift`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from harness.core.errors import HarnessError
from harness.report.drift import drift
from harness.report.drift_tables import NOTE, drift_markdown, drift_series, drift_tables, figure_names


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "drift", help="how far each model moved from its pre-trained model: weight change and CKA per layer",
        description="Per evaluated model: ‖θ − θ0‖ / ‖θ0‖ per block (CNN, each layer, the rest) and the linear CKA "
                    "between each of its hidden states and θ0's on the first utterances of a corpus split.")
    parser.add_argument("output", type=Path, nargs="+",
                        help="the output folder of `harness run` (several: one report of all their models)")
    parser.add_argument("--corpus", help="a corpus the run prepared (default: the one most evaluations read)")
    parser.add_argument("--split", default="test", help="its split whose audio is compared (default: test)")
    parser.add_argument("--utterances", type=int, default=100, metavar="N",
                        help="the first N utterances of the split (default 100)")
    parser.add_argument("--device", default="auto", metavar="DEVICE",
                        help="where the models run: auto (the GPU when there is one; default), cpu, cuda or cuda:N")
    parser.add_argument("--format", choices=["table", "md", "json"], default="table",
                        help="tables on the terminal (default), Markdown, or JSON")
    parser.add_argument("--reference", metavar="MODEL",
                        help="compare with this model of the run (a label `harness models` lists; of each seed) "
                             "instead of each model's pre-trained one")
    parser.add_argument("--layer-norm", action="store_true",
                        help="CKA of the layer-normed hidden states, as the probes' weighted sum reads them")
    parser.add_argument("--by-seed", action="store_true",
                        help="a row (and a line in the plot) per model and seed instead of one per model with the "
                             "mean over its seeds (JSON always lists each seed)")
    parser.add_argument("--plot", type=Path, metavar="FILE",
                        help="also draw both measures by layer (.png or .svg)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.utterances < 1:
        raise HarnessError(f"--utterances {args.utterances} compares no audio; give 1 or more.")
    if args.plot is not None and args.plot.suffix.lower() not in (".png", ".svg"):
        raise HarnessError(f"--plot {args.plot} names no figure format; end it in .png or .svg.")
    if args.plot is not None:  # before the models run: a path that cannot be written fails at once
        try:
            args.plot.parent.mkdir(parents=True, exist_ok=True)
            args.plot.touch()
        except OSError as exc:
            raise HarnessError(f"cannot write {args.plot} ({exc.strerror}); choose a writable --plot path.") from None
    data = drift(args.output, corpus=args.corpus, split=args.split, utterances=args.utterances, device=args.device,
                 reference=args.reference, layer_norm=args.layer_norm)
    if args.plot is not None:
        from harness.report.plots import drift_figure, png, svg

        figure = drift_figure(drift_series(data, args.by_seed), **figure_names(data))
        if args.plot.suffix.lower() == ".svg":
            args.plot.write_text(svg(figure), encoding="utf-8")
        else:
            args.plot.write_bytes(png(figure))
    if args.format == "json":
        print(json.dumps(data, indent=2, ensure_ascii=False))
    elif args.format == "md":
        print(drift_markdown(data, args.by_seed), end="")
    else:
        print_report(data, Console(highlight=False), args.by_seed)
    return 0


def print_report(report: dict[str, Any], console: Console, by_seed: bool = False) -> None:
    """The report's tables on a terminal."""
    for table in drift_tables(report, by_seed):
        shown = Table(title=table.title)
        for i, name in enumerate(table.header):
            shown.add_column(name, justify="left" if i == 0 else "right")
        for row in table.rows:
            shown.add_row(*row)
        console.print(shown)
    console.print(NOTE)
