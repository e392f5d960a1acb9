"""Helpers shared by the recipe commands (`run`, `plan`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.core.plan import Plan, build_plan
from harness.core.recipe import load_recipe
from harness.core.registry import default_manager


def add_recipe_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", type=Path, help="the YAML recipe")
    parser.add_argument("--output", type=Path, help="output folder (default: the recipe's `output`)")
    parser.add_argument("--preset", help="merge the recipe's presets.NAME over it (also HARNESS_PRESET)")


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """``--device``: where the stages on the accelerator run (checked when the executor is made)."""
    parser.add_argument("--device", default="auto", metavar="DEVICE",
                        help="where fine-tuning and evaluation run: auto (the GPU when there is one; default), cpu, "
                             "cuda or cuda:N; other stages always run on the CPU")


def load_plan(args: argparse.Namespace, allow_unset: bool = False) -> Plan:
    plugins = default_manager()
    recipe = load_recipe(args.recipe, plugins, preset=args.preset, output=args.output, allow_unset=allow_unset)
    return build_plan(recipe, plugins)
