"""`harness models DIR [DIR ...]`: every model of a run, with its leaderboard label, seed, stage key and folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.core.result_rows import distinct_outputs
from harness.report.models import models_of


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "models", help="list a run's models: leaderboard label, seed, stage key, folder",
        description="The models of a run, by the labels the leaderboard prints; `harness export DIR --model LABEL` "
                    "writes one out.")
    parser.add_argument("output", type=Path, nargs="+",
                        help="the output folder of `harness run` (several: the models of each in turn, as "
                             "`harness leaderboard A B` shows them)")
    parser.add_argument("--json", action="store_true", help="a JSON list instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    outputs = distinct_outputs(args.output)
    models = models_of(outputs)
    if args.json:
        print(json.dumps([m.to_dict() for m in models], indent=2, ensure_ascii=False))
        return 0
    table = Table(title=f"models in {', '.join(map(str, outputs))}")
    for col in ("upstream", "model", "seed", "stage", "folder"):
        table.add_column(col, justify="right" if col == "seed" else "left", overflow="fold")
    for m in models:
        label = m.label if m.evaluated else f"[dim]{m.label}[/]"
        table.add_row(m.upstream, label, "" if m.seed is None else str(m.seed), m.stage, str(m.folder))
    Console(highlight=False).print(table)
    return 0
