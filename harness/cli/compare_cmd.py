"""`harness compare DIR MODEL --against MODEL`: two models of a run, column by column, with intervals and
paired tests.

    harness compare out/ "pr · speech_ft alpha=0.25" --against "pr · ties" [--also other_out/] [--json]

Models are named by their leaderboard labels (``upstream · label`` where several upstreams share one;
`harness models DIR` lists them). Every metric both models have on common seeds gets both values with
their intervals, model − against with its paired-bootstrap interval, the paired test over items
(permutation; paired bootstrap for an EER, an MTWV and a SUPERB score that includes them) and the
paired t-test over seeds from 3 seeds on, computed as the leaderboard computes its comparisons.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from harness.cli.resampling import add_resampling_arguments, resampling_settings
from harness.report.leaderboard.text import adjustment_text


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "compare", help="two models of a run side by side: values, Δ with interval, paired tests",
        description="Compare any two models of a run on every metric both have (intervals and paired tests as in "
                    "the leaderboard, which compares each model with its pre-trained one).")
    parser.add_argument("output", type=Path, help="the output folder of `harness run`")
    parser.add_argument("model", help="the model's leaderboard label (see `harness models DIR`)")
    parser.add_argument("--against", required=True, help="the label of the model to compare with")
    parser.add_argument("--also", type=Path, action="append", default=[], metavar="DIR",
                        help="another output folder read with the first (repeatable): models of a study run in "
                             "pieces, as `harness leaderboard DIR DIR ...` shows them")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")
    add_resampling_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from harness.report.leaderboard.pairwise import compare

    settings = resampling_settings(args)
    result = compare([args.output, *args.also], args.model, args.against, settings)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        return 0
    level = f"{round(settings.level * 100)} %"
    table = Table(title=f"{result.model}  vs  {result.baseline}", title_justify="left", box=box.SIMPLE_HEAD,
                  pad_edge=False, collapse_padding=True, show_edge=False)
    rows = result.table_rows()
    names = ["metric", "model", "against", "Δ", f"Δ {level} interval", "p items", "p seeds"]
    if all(row[-1] == "–" for row in rows):  # fewer than 3 shared seeds: no seed test anywhere
        names, rows = names[:-1], [row[:-1] for row in rows]
    for name in names:
        table.add_column(name, justify="left" if name == "metric" else "right", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    console = Console(highlight=False)
    console.print(table)
    console.print(f"Δ = model − against on shared items and seeds, with its paired-bootstrap interval. p items: "
                  f"paired permutation test ({settings.n_permutations} resamples); † paired bootstrap (EER, MTWV, "
                  f"SUPERB with them). p seeds: paired t-test from 3 seeds. * p < {settings.threshold:g} in every "
                  "test that applies." + adjustment_text(settings.adjust) + " `--json` adds each model's interval.")
    for note in result.notes:
        console.print(f"Note: {note}")
    return 0
