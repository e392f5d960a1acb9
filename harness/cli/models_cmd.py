"""`harness models DIR`: every model of a run, with its leaderboard label, seed, stage key and folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.report.models import run_models


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "models", help="list a run's models: leaderboard label, seed, stage key, folder",
        description="The models of a run, by the labels the leaderboard prints; `harness export DIR --model LABEL` "
                    "writes one out.")
    parser.add_argument("output", type=Path, help="the output folder of `harness run`")
    parser.add_argument("--json", action="store_true", help="a JSON list instead of a table")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    models = run_models(args.output)
    if args.json:
        print(json.dumps([m.to_dict() for m in models], indent=2, ensure_ascii=False))
        return 0
    table = Table(title=f"models in {args.output}")
    for col in ("upstream", "model", "seed", "stage", "folder"):
        table.add_column(col, justify="right" if col == "seed" else "left", overflow="fold")
    for m in models:
        label = m.label if m.evaluated else f"[dim]{m.label}[/]"
        table.add_row(m.upstream, label, "" if m.seed is None else str(m.seed), m.stage, str(m.folder))
    Console(highlight=False).print(table)
    return 0
