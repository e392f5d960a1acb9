"""`harness leaderboard DIR`: the results of a run as a table with intervals, tests and plots."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.cli.resampling import add_resampling_arguments, resampling_settings
from harness.core.errors import HarnessError
from harness.core.result_rows import distinct_outputs
from harness.report.leaderboard import FORMATS, build, render


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "leaderboard", help="models × metrics with 95 %% intervals and tests against the pre-trained model",
        description="Build the leaderboard of an output folder (or of several, as one table): mean over seeds "
                    "with bootstrap intervals, paired tests against the pre-trained model of each upstream, and "
                    "plots (HTML).")
    parser.add_argument("output", type=Path, nargs="+",
                        help="the output folder of `harness run` (several: one table of all their models, e.g. "
                             "one folder per upstream or per seed)")
    parser.add_argument("--format", choices=FORMATS, default="md",
                        help="md (default), csv, html, json or latex (booktabs tables for a paper)")
    parser.add_argument("--out", type=Path, help="write to this file instead of standard output")
    parser.add_argument("--plots", type=Path, metavar="DIR", help="also save every plot as SVG and PNG in DIR")
    parser.add_argument("--drift", action="store_true",
                        help="md, html, json: add how far each model moved from its pre-trained model (`harness drift` "
                             "with its defaults; loads and runs every model)")
    parser.add_argument("--paper", action="store_true",
                        help="md, html, json, latex: set the Speech-FT paper's reported numbers beside each model that "
                             "corresponds to a row of its tables (matched by the shipped recipes' names)")
    parser.add_argument("--device", default="auto", metavar="DEVICE",
                        help="with --drift: where the models run (auto: the GPU when there is one; default)")
    add_resampling_arguments(parser)
    parser.set_defaults(func=run)


#: the formats that show `harness drift`'s report, and those that show the paper's numbers
DRIFT_FORMATS = ("md", "html", "json")
PAPER_FORMATS = (*DRIFT_FORMATS, "latex")


def run(args: argparse.Namespace) -> int:
    settings = resampling_settings(args)
    if args.drift and args.format not in DRIFT_FORMATS:
        raise HarnessError(f"--drift adds a section to {', '.join(DRIFT_FORMATS)}; {args.format} holds the tables only "
                           "(run `harness drift` on its own).")
    if args.paper and args.format not in PAPER_FORMATS:
        raise HarnessError(f"--paper adds a section to {', '.join(PAPER_FORMATS)}; {args.format} holds the tables "
                           "only.")
    board = build(args.output, settings)
    if args.paper:
        from harness.report.leaderboard.paper import paper_matches

        board.paper = paper_matches(board)
    if args.drift:
        from harness.report.drift import drift

        board.drift = drift(args.output, device=args.device)
    if args.format == "json":  # with where each model's numbers came from
        from harness.report.leaderboard.board_json import with_provenance

        text = json.dumps(with_provenance(board, distinct_outputs(args.output)), indent=2, ensure_ascii=False) + "\n"
    else:
        text = render(board, args.format)
    if args.plots:
        from harness.report import plots
        from harness.report.leaderboard.figures import drift_plot, figures

        args.plots.mkdir(parents=True, exist_ok=True)
        for plot in [*figures(board), *([drift_plot(board.drift)] if board.drift is not None else [])]:
            (args.plots / f"{plot.name}.svg").write_text(plots.svg(plot.figure), encoding="utf-8")
            (args.plots / f"{plot.name}.png").write_bytes(plots.png(plot.figure))
    if args.out:
        try:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise HarnessError(f"cannot write {args.out} ({exc.strerror}); choose a writable --out path.") from exc
    else:
        print(text, end="")
    return 0
