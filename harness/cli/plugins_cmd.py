"""`harness plugins`: every plugin found, its kind and the package it came from."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from harness.core.registry import default_manager


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("plugins", help="list every plugin found and the package it came from")
    parser.add_argument("--json", action="store_true", help="print a JSON list")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    manager = default_manager()
    infos = manager.all()
    if args.json:
        print(json.dumps([{"kind": i.kind, "name": i.name, "origin": i.origin, "origin_version": i.origin_version,
                           "version": i.version, "module": i.module, "summary": i.summary} for i in infos],
                         indent=2))
        return 0
    console = Console(highlight=False)
    table = Table(title=f"{len(infos)} plugins")
    for col in ("kind", "name", "origin", "summary"):
        table.add_column(col)
    for i in infos:
        table.add_row(i.kind, i.name, f"{i.origin} {i.origin_version}", i.summary)
    console.print(table)
    for failure in manager.failures:
        console.print(f"[yellow]not loaded:[/] {failure.entry_point} from {failure.origin}: {failure.error}")
    return 0
