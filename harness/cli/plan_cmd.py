"""`harness plan RECIPE`: the stage graph, what is cached and what will run (a dry run)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.cli.common import add_recipe_arguments, load_plan
from harness.core.registry import default_manager
from harness.core.stage_kinds import StageKind
from harness.pipeline.replacements import replacements, replacements_text, reuse_text, reused_differently
from harness.pipeline.run import describe
from harness.pipeline.scale import FrameCacheProjection, human_bytes, project_frame_caches


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
    caches = project_frame_caches(plan, recipe.output, default_manager())
    replacing = replacements(plan, recipe.output)
    reused = reused_differently(plan, recipe.output)
    if args.json:
        print(json.dumps({
            "recipe": str(recipe.path), "output": str(recipe.output), "counts": counts,
            "inputs": {k: {"path": str(p), "exists": p.exists()} for k, p in sorted(recipe.inputs.items())},
            "stages": [{"key": s.key, "kind": s.kind, "plugin": s.plugin, "title": s.title,
                        "inputs": s.inputs} for s in plan.ordered()],
            "frame_cache": [c.as_json() for c in caches],
            "replaces": [{"key": r.stage.key, "replaces": r.replaces.key, "title": r.stage.title,
                          "changes": r.changes()} for r in replacing],
            "reused": [{"key": r.stage.key, "title": r.stage.title, "changes": r.changes()} for r in reused],
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
    if replacing:
        console.print(replacements_text(replacing, recipe.output))
    if reused:
        console.print(reuse_text(reused))
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
    if caches:
        console.print(frame_cache_table(caches))
    if args.stages:
        for stage in plan.ordered():
            deps = ", ".join(k[:8] for k in stage.inputs.values())
            console.print(f"{stage.key[:8]}  {stage.kind:<9} {stage.title}" + (f"  <- {deps}" if deps else ""))
    return 0


def frame_cache_table(caches: list[FrameCacheProjection]) -> Table:
    """Projected float16 frame caches, and the stages that will run the upstream on the fly instead."""
    reasons = list(dict.fromkeys(c.unknown for c in caches if c.unknown))  # each once, in table order
    caption = "unknown: " + "; ".join(reasons) + "." if reasons else None
    table = Table(title="frame cache (float16 hidden states), projected", caption=caption, caption_justify="left")
    for col in ("upstream", "corpus", "models", "per model", "total", "on the fly (past max_frame_gb)"):
        table.add_column(col, justify="right" if col in ("models", "per model", "total") else "left")
    for c in caches:
        per_model = human_bytes(c.bytes_per_model) if c.bytes_per_model is not None else "unknown"
        total = human_bytes(c.total_bytes) if c.total_bytes is not None else "unknown"
        fly = f"{len(c.on_the_fly)} stage(s)" if c.on_the_fly else "none"
        table.add_row(c.upstream, c.corpus, str(c.models), per_model, total, fly)
    return table

