"""`harness plan RECIPE`: the stage graph, what is cached and what will run (a dry run)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.cli.common import add_recipe_arguments, load_plan
from harness.core.stage_kinds import StageKind
from harness.pipeline.run import describe


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("plan", help="dry run: the stage graph, what is cached, what will run")
    add_recipe_arguments(parser)
    parser.add_argument("--stages", action="store_true", help="list every stage")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    plan = load_plan(args, allow_unset=True)
    recipe = plan.recipe
    counts = describe(plan, recipe.output)
    if args.json:
        print(json.dumps({
            "recipe": str(recipe.path), "output": str(recipe.output), "counts": counts,
            "inputs": {k: {"path": str(p), "exists": p.exists()} for k, p in sorted(recipe.inputs.items())},
            "stages": [{"key": s.key, "kind": s.kind, "plugin": s.plugin, "title": s.title,
                        "inputs": s.inputs} for s in plan.ordered()],
        }, indent=2))
        return 0
    console = Console(highlight=False)
    table = Table(title=f"{recipe.name}: {len(plan.stages)} stages -> {recipe.output}")
    for col in ("kind", "stages", "cached", "to run"):
        table.add_column(col, justify="left" if col == "kind" else "right")
    for kind in StageKind:
        if kind in counts:
            c = counts[kind]
            table.add_row(kind, str(c["stages"]), str(c["cached"]), str(c["to_run"]))
    console.print(table)
    if recipe.inputs:
        paths = Table(title="input paths the recipe needs")
        for col in ("key", "path", "exists"):
            paths.add_column(col)
        for key, path in sorted(recipe.inputs.items()):
            paths.add_row(key, str(path), "yes" if path.exists() else "[red]MISSING[/]")
        console.print(paths)
        missing = recipe.missing_inputs()
        if missing:
            relative = any(not p.is_absolute() for p in missing.values())
            where = f" (relative paths are read from the working directory {Path.cwd()})" if relative else ""
            console.print(f"{len(missing)} input path(s) missing{where}: set the variables or fix the paths "
                          "before `harness run`.")
    if args.stages:
        for stage in plan.ordered():
            deps = ", ".join(k[:8] for k in stage.inputs.values())
            console.print(f"{stage.key[:8]}  {stage.kind:<9} {stage.title}" + (f"  <- {deps}" if deps else ""))
    return 0
