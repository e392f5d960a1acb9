"""`harness plugins [NAME]`: every plugin found, its kind and the package it came from; with a name,
that plugin's parameters (type, default, description) from its pydantic schema."""

from __future__ import annotations

import argparse
import json

from rich.console import Console
from rich.table import Table

from harness.core.errors import HarnessError
from harness.core.params import describe_params
from harness.core.registry import PluginManager, default_manager
from harness.core.suggest import suggest


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("plugins", help="list every plugin found and the package it came from")
    parser.add_argument("name", nargs="?", help="show this plugin's parameters (every kind with that name)")
    parser.add_argument("--json", action="store_true", help="print a JSON list")
    parser.set_defaults(func=run)


def show_plugin(manager: PluginManager, name: str, as_json: bool) -> int:
    """The parameters of every plugin named ``name``, one table per kind."""
    found = [i for i in manager.all() if i.name == name]
    if not found:
        names = sorted({i.name for i in manager.all()})
        raise HarnessError(f"there is no plugin named {name!r} (`harness plugins` lists them){suggest(name, names)}")
    if as_json:
        print(json.dumps([{"kind": i.kind, "name": i.name, "version": i.version, "origin": i.origin,
                           "summary": i.summary, "params": describe_params(i.cls.Params)} for i in found], indent=2))
        return 0
    console = Console(highlight=False)
    for info in found:
        params = describe_params(info.cls.Params)
        table = Table(title=f"{info.kind} {info.name} (version {info.version}, {info.origin}): {info.summary}")
        for col in ("parameter", "type", "default", "description"):
            table.add_column(col)
        for p in params:
            table.add_row(p["name"], p["type"], p["default"], p["description"])
        console.print(table if params else f"{info.kind} {info.name}: {info.summary}; no parameters.")
    return 0


def run(args: argparse.Namespace) -> int:
    manager = default_manager()
    if args.name:
        return show_plugin(manager, args.name, args.json)
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
