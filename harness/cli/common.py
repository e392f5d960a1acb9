"""Helpers shared by the recipe commands (`run`, `plan`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.core.errors import HarnessError
from harness.core.plan import Plan, build_plan
from harness.core.recipe import load_recipe
from harness.core.registry import default_manager


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", type=Path, help="the YAML recipe")
    parser.add_argument("--output", type=Path, help="output folder (default: the recipe's `output`)")
    parser.add_argument("--preset", help="merge the recipe's presets.NAME over it (also HARNESS_PRESET)")
    parser.add_argument("--set", action="append", dest="overrides", metavar="KEY=VALUE",
                        help="set a recipe value (repeatable; the value is read as YAML), e.g. "
                             "--set finetune.pr.steps=100 --set 'merges.speech_ft.alpha=[0, 0.5]'")
    parser.add_argument("--only", action="append", metavar="KIND=NAMES",
                        help="keep only these recipe entries (repeatable; KIND: upstream, finetune or downstream), "
                             "e.g. --only downstream=pr,sid")
    parser.add_argument("--limit", type=int, metavar="N",
                        help="at most N utterances per split of every corpus, for a quick check (other stage keys; "
                             "the leaderboard marks the models as limited)")


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """``--device``: where the stages on the accelerator run (checked when the executor is made)."""
    parser.add_argument("--device", default="auto", metavar="DEVICE",
                        help="where fine-tuning and evaluation run: auto (the GPU when there is one; default), cpu, "
                             "cuda or cuda:N; other stages always run on the CPU")


def load_plan(args: argparse.Namespace, allow_unset: bool = False) -> Plan:
    plugins = default_manager()
    recipe = load_recipe(args.recipe, plugins, preset=args.preset, output=args.output, allow_unset=allow_unset,
                         overrides=getattr(args, "overrides", None), only=getattr(args, "only", None))
    limit = getattr(args, "limit", None)
    if limit is not None and limit < 1:
        raise HarnessError(f"--limit {limit}: give a positive number of utterances per split, e.g. --limit 20.")
    recipe.limit = limit
    return build_plan(recipe, plugins)
