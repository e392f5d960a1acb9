"""Runs the toy recipe in its own process (the SIGKILL test kills this one mid-stage)."""

from __future__ import annotations

import sys
from pathlib import Path

from harness.core.plan import build_plan
from harness.core.recipe import load_recipe
from harness.pipeline.executors.local import LocalExecutor
from harness.pipeline.run import run_plan
from tests.core_helpers import toy_manager

if __name__ == "__main__":
    manager = toy_manager()
    recipe = load_recipe(Path(sys.argv[1]), manager)
    summary = run_plan(build_plan(recipe, manager), recipe.output, LocalExecutor(manager))
    sys.exit(0 if summary.ok else 1)
