"""`harness leaderboard DIR`: the results of a run as a table with intervals, tests and plots."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.core.errors import HarnessError
from harness.report.leaderboard import FORMATS, Settings, build, render
from harness.report.stats import ADJUSTMENTS


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "leaderboard", help="models × metrics with 95 %% intervals and tests against the pre-trained model",
        description="Build the leaderboard of an output folder: mean over seeds with bootstrap intervals, "
                    "paired tests against the pre-trained model of each upstream, and plots (HTML).")
    parser.add_argument("output", type=Path, help="the output folder of `harness run`")
    parser.add_argument("--format", choices=FORMATS, default="md",
                        help="md (default), csv, html, json or latex (a booktabs table for a paper)")
    parser.add_argument("--out", type=Path, help="write to this file instead of standard output")
    parser.add_argument("--plots", type=Path, metavar="DIR", help="also save every plot as SVG and PNG in DIR")
    parser.add_argument("--resamples", type=int, default=Settings.n_resamples,
                        help=f"bootstrap resamples (default {Settings.n_resamples})")
    parser.add_argument("--permutations", type=int, default=Settings.n_permutations,
                        help=f"permutation-test resamples (default {Settings.n_permutations})")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the resampling (default 0)")
    parser.add_argument("--adjust", choices=ADJUSTMENTS, default="none",
                        help="adjust p-values for testing many comparisons: holm (family-wise error), bh "
                             "(Benjamini–Hochberg false discovery rate) or none (default)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.resamples < 100 or args.permutations < 100:
        raise HarnessError("--resamples and --permutations must be at least 100; the defaults suit most uses.")
    settings = Settings(n_resamples=args.resamples, n_permutations=args.permutations, seed=args.seed,
                        adjust=args.adjust)
    board = build(args.output, settings)
    text = render(board, args.format)
    if args.format == "json":  # with where each model's numbers came from
        from harness.report.provenance import attach

        text = json.dumps(attach(json.loads(text), args.output), indent=2, ensure_ascii=False) + "\n"
    if args.plots:
        from harness.report import plots
        from harness.report.leaderboard.html import figures

        args.plots.mkdir(parents=True, exist_ok=True)
        for plot in figures(board):
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
