"""The finished evaluate and score stages of one or several results stores, read as one.

Several stores make one leaderboard when a study ran in pieces, e.g. one output folder per upstream
or per seed on different machines. Stage keys name what a stage computed, so a key found in two stores
(the FBank baseline both evaluated) is one stage, read once. The models of each store keep their
recipe's order, the first store's first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from harness.core.errors import HarnessError
from harness.core.result_rows import add_planned, open_store
from harness.core.stage_kinds import StageKind
from harness.core.store import MetricRow, StageRow


@dataclass
class StoreContents:
    stages: list[StageRow]  # in the order they started (a newer stage of the same cell comes later)
    metrics: dict[str, list[MetricRow]]  # stage key -> its metrics
    folders: dict[str, Path]  # stage key -> the output folder holding its files
    planned: dict[str, tuple[str, float]]  # cell -> the stage the latest run planned for it, when (Store.planned)


def read_stores(outputs: Sequence[Path]) -> StoreContents:
    """The finished evaluate and score stages of the stores in ``outputs`` (output folders of `harness run`)."""
    found: dict[str, StageRow] = {}
    metrics: dict[str, list[MetricRow]] = {}
    folders: dict[str, Path] = {}
    planned: dict[str, tuple[str, float]] = {}
    for index, output in enumerate(outputs):
        output = Path(output)
        with open_store(output) as store:
            stages = [s for s in store.stages(status="done") if s.kind in (StageKind.EVALUATE, StageKind.SCORE)]
            rows = store.metrics()
            add_planned(planned, store.planned())
        for stage in stages:
            if stage.key in found:
                continue
            if len(outputs) > 1 and "rank" in stage.labels:  # each store's models in its recipe's order, store by store
                stage = replace(stage, labels={**stage.labels, "rank": [index, *stage.labels["rank"]]})
            found[stage.key] = stage
            folders[stage.key] = output
        for m in rows:
            if folders.get(m.stage) == output:
                metrics.setdefault(m.stage, []).append(m)
    if not found:
        where = f"the store in {outputs[0]} holds" if len(outputs) == 1 else \
            f"the stores in {', '.join(str(o) for o in outputs)} hold"
        raise HarnessError(f"{where} no finished evaluate or score stage yet; run a recipe to completion first.")
    ordered = sorted(found.values(), key=lambda s: s.started if s.started is not None else 0.0)
    return StoreContents(ordered, metrics, folders, planned)
