"""The harness from Python: :func:`run` a recipe and read :func:`results`, as ``harness.run`` and
``harness.results`` (imported on first use, so ``import harness`` stays light).

>>> import harness, pandas
>>> harness.run("recipes/demo.yaml", output="runs/demo", overrides={"finetune.pr.steps": 20})
>>> df = pandas.DataFrame(harness.results("runs/demo"))
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.core.plan import build_plan
from harness.core.recipe import load_recipe
from harness.core.registry import default_manager

log = logging.getLogger(__name__)


def _set_pairs(overrides: Mapping[str, Any] | Sequence[str] | None) -> list[str] | None:
    """``{"finetune.pr.steps": 100}`` or ``["finetune.pr.steps=100"]`` as ``--set`` pairs."""
    if overrides is None:
        return None
    if isinstance(overrides, Mapping):
        return [f"{key}={json.dumps(value)}" for key, value in overrides.items()]
    return [str(pair) for pair in overrides]


def run(recipe: str | Path, output: str | Path | None = None,
        overrides: Mapping[str, Any] | Sequence[str] | None = None, *, preset: str | None = None,
        device: str = "auto", keep_going: bool = False) -> list[dict[str, Any]]:
    """Run ``recipe`` as ``harness run`` does (cached, resumable) and return :func:`results` of its output.

    ``output`` replaces the recipe's output folder; ``overrides`` set recipe values by key path, as
    ``--set`` (``{"finetune.pr.steps": 100, "merges.speech_ft.alpha": [0, 0.5]}``); ``preset`` is
    ``--preset``, ``device`` ``--device``. A user error raises :class:`~harness.core.errors.HarnessError`
    with the CLI's sentence; failed stages raise one naming them (finished stages are kept).
    """
    from harness.pipeline.executors.local import LocalExecutor
    from harness.pipeline.replacements import announcements
    from harness.pipeline.run import run_plan

    plugins = default_manager()
    loaded = load_recipe(Path(recipe), plugins, preset=preset, output=Path(output) if output is not None else None,
                         overrides=_set_pairs(overrides))
    missing = loaded.missing_inputs()
    if missing:
        listing = "; ".join(f"{k} -> {p}" for k, p in sorted(missing.items()))
        raise HarnessError(f"{len(missing)} input path(s) of {loaded.path.name} do not exist ({listing}); "
                           "fix the paths or set the environment variables the recipe uses.")
    plan = build_plan(loaded, plugins)
    for line in announcements(plan, loaded.output):
        log.warning("%s", line)
    summary = run_plan(plan, loaded.output, LocalExecutor(plugins, device=device), keep_going=keep_going)
    problems = {**summary.failed, **summary.stopped}
    if problems:
        first = next(iter(problems.values()))
        raise HarnessError(f"{len(problems)} stage(s) of {loaded.path.name} did not finish (first: {first}); "
                           f"`harness results {loaded.output} --failed` shows them, and running again resumes.")
    return results(loaded.output)


def results(output: str | Path | Sequence[str | Path]) -> list[dict[str, Any]]:
    """One flat row per stored metric of the finished stages in ``output`` (an output folder, or several read as
    one): ``output`` (the folder holding the stage), ``stage``, ``kind``, the labels (``upstream``, ``model``,
    ``finetune``, ``merge``, ``alpha``, ``downstream``, ``seed``), ``task``, ``metric`` (``task.name``), ``value``,
    ``direction``, ``n_items``, ``items_path`` (per-item results, under ``output``) and ``current`` (false for a
    stage that a later run of the same cell replaced after the recipe changed): ``pandas.DataFrame(rows)``."""
    from harness.core.result_rows import metric_rows

    return metric_rows(output)
