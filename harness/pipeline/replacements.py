"""What a plan does with the finished stages of its output folder when the recipe changed since they ran.

Stages that will *replace* finished ones of the same cells: a parameter in the key changed (a probe's
steps, a corpus), so the plan's stages have other keys; the leaderboard then shows what the latest run
planned (:func:`harness.core.store.current_by_cell`). Finished stages *reused* although the recipe now
runs them differently: only execution-only parameters changed (:data:`harness.core.plugin.EXECUTION_ONLY`:
a cache budget, checkpoints), which do not change results. `harness plan` and `harness run` say both before
anything runs (:func:`announcements`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.core.params import changed_params
from harness.core.plan import Plan, Stage
from harness.core.store import DB_NAME, StageRow, Store, cell_identity, current_by_cell
from harness.pipeline.execute import OUTCOME, artifact_dir, read_outcome


@dataclass
class Replacement:
    stage: Stage  # planned and not run yet
    replaces: StageRow  # the current finished stage of its cell in the store
    ran_with: dict[str, Any]  # the execution-only values that one ran with (where not their defaults)

    def changes(self) -> list[str]:
        """The parameters that differ, e.g. ``sid steps 50 → 100`` (none listed when only inputs differ), the
        values each stage runs with compared; then those the finished stage's key held though they are
        execution-only (:meth:`left_the_key`)."""
        moved = [f"{_entry(self.stage)} {k} {v} left the stage key" for k, v in self.left_the_key().items()]
        return self.param_changes() + moved

    def param_changes(self) -> list[str]:
        """The parameters whose values differ between the finished stage and this one."""
        return _changes(self.stage, {**self.replaces.params, **self.ran_with}, self.stage.run_params)

    def left_the_key(self) -> dict[str, Any]:
        """The execution-only values the finished stage's key held: it was stored before they left stage keys, so
        only its key differs (the stage runs once more, with the same results)."""
        return {k: v for k, v in self.stage.execution.items()
                if self.replaces.params.get(k) == v and self.stage.params.get(k) != v}


@dataclass
class Reuse:
    stage: Stage  # planned and finished
    ran_with: dict[str, Any]  # the execution-only values it ran with (where not their defaults)

    def changes(self) -> list[str]:
        """The execution-only parameters that differ, e.g. ``sid max_frame_gb 4.0 → 8.0``."""
        return _changes(self.stage, {**self.stage.params, **self.ran_with}, self.stage.run_params)


def _entry(stage: Stage) -> str:
    """The recipe entry a stage runs: its downstream, fine-tuning or plugin."""
    return str(stage.labels.get("downstream") or stage.labels.get("finetune") or stage.plugin)


def _changes(stage: Stage, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return [f"{_entry(stage)} {k} {before} → {after}" for k, before, after in changed_params(old, new)]


def _ran_with(output: Path, key: str) -> dict[str, Any] | None:
    """The execution-only values a finished stage ran with (from its outcome file); None when not finished."""
    try:
        outcome = read_outcome(output, key)
    except (OSError, ValueError, TypeError):  # unreadable: it runs again
        return None
    return outcome.execution if outcome is not None else None


def replacements(plan: Plan, output: Path) -> list[Replacement]:
    """The plan's stages still to run whose cell already has a finished stage (of another key) in ``output``."""
    if not (Path(output) / DB_NAME).is_file():
        return []
    try:
        with Store(output, readonly=True) as store:
            current = current_by_cell(store.stages(status="done"), store.planned())
    except HarnessError:  # a damaged store: the run sets it aside and says so
        return []
    out = []
    for stage in plan.ordered():
        found = current.get(cell_identity(stage.kind, stage.labels))
        cached = (artifact_dir(output, stage.key) / OUTCOME).is_file()
        if found is not None and found.key != stage.key and not cached:
            out.append(Replacement(stage, found, _ran_with(output, found.key) or {}))
    return out


def _shown_changes(found: list[Replacement] | list[Reuse]) -> str:
    """The distinct changes of ``found``, the first three named."""
    changes = list(dict.fromkeys(c for r in found for c in r.changes()))
    return "; ".join(changes[:3]) + (f"; {len(changes) - 3} more" if len(changes) > 3 else "")


def replacements_text(replacing: list[Replacement], output: Path) -> str:
    """One sentence: how many stages to run replace finished ones of the same cells, and what changed (or that
    they were stored while an execution-only parameter was still part of stage keys)."""
    shown = _shown_changes(replacing)
    n = len(replacing)
    if any(r.left_the_key() for r in replacing) and not any(r.param_changes() for r in replacing):
        return (f"{n} stage{'s' if n > 1 else ''} in {output} run{'' if n > 1 else 's'} once more ({shown}): "
                f"{'they were' if n > 1 else 'it was'} stored while execution-only parameters were part of stage keys; "
                "the results will be the same.")
    return (f"{n} stage{'s' if n > 1 else ''} to run replace{'' if n > 1 else 's'} finished ones of the same cells in "
            f"{output}, whose recipe changed{f' ({shown})' if shown else ''}; the store keeps both and the leaderboard "
            "shows this run's. Give another --output to keep the two settings apart.")


def reused_differently(plan: Plan, output: Path) -> list[Reuse]:
    """The plan's finished stages whose execution-only parameters the recipe has since changed."""
    out = []
    for stage in plan.ordered():
        ran_with = _ran_with(output, stage.key)
        if ran_with is not None and ran_with != stage.execution:
            out.append(Reuse(stage, ran_with))
    return out


def reuse_text(reused: list[Reuse]) -> str:
    """One sentence: how many finished stages are reused although the recipe now runs them differently."""
    shown = _shown_changes(reused)
    n = len(reused)
    return (f"{n} finished stage{'s are' if n > 1 else ' is'} reused although the recipe now runs "
            f"{'them' if n > 1 else 'it'} differently ({shown}): these parameters change how a stage runs, not its "
            "results. Give another --output to run them again.")


def announcements(plan: Plan, output: Path) -> list[str]:
    """What to say before a run about the finished stages of ``output`` the recipe changed."""
    replacing, reused = replacements(plan, output), reused_differently(plan, output)
    return ([replacements_text(replacing, output)] if replacing else []) + ([reuse_text(reused)] if reused else [])
