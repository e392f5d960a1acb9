"""Which stages of a plan will replace finished stages of the same cells in the output folder: the recipe
changed since they ran (a probe's steps, a corpus), so the plan's stages have other keys. `harness plan`
says so before anything runs; the leaderboard then shows what the latest run planned
(:func:`harness.core.store.current_by_cell`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.core.errors import HarnessError
from harness.core.params import changed_params
from harness.core.plan import Plan, Stage
from harness.core.store import DB_NAME, StageRow, Store, cell_identity, current_by_cell
from harness.pipeline.execute import OUTCOME, artifact_dir


@dataclass
class Replacement:
    stage: Stage  # planned and not run yet
    replaces: StageRow  # the current finished stage of its cell in the store

    def changes(self) -> list[str]:
        """The parameters that differ, e.g. ``sid steps 50 → 100`` (none listed when only inputs differ)."""
        name = str(self.stage.labels.get("downstream") or self.stage.labels.get("finetune") or self.stage.plugin)
        return [f"{name} {k} {old} → {new}" for k, old, new in changed_params(self.replaces.params, self.stage.params)]


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
            out.append(Replacement(stage, found))
    return out


def replacements_text(replacing: list[Replacement], output: Path) -> str:
    """One sentence: how many stages to run replace finished ones of the same cells, and what changed."""
    changes = list(dict.fromkeys(c for r in replacing for c in r.changes()))
    shown = "; ".join(changes[:3]) + (f"; {len(changes) - 3} more" if len(changes) > 3 else "")
    n = len(replacing)
    return (f"{n} stage{'s' if n > 1 else ''} to run replace{'' if n > 1 else 's'} finished ones of the same cells in "
            f"{output}, whose recipe changed{f' ({shown})' if shown else ''}; the store keeps both and the leaderboard "
            "shows this run's. Give another --output to keep the two settings apart.")
