"""The flat rows of a results store: one per stored metric with its stage's labels, read by
`harness results` and ``harness.results()`` (a ``pandas.DataFrame`` away)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.core.stage_kinds import StageKind
from harness.core.store import DB_NAME, Store, replaced_keys

#: the stage labels copied into every row (what the leaderboard groups by)
LABELS = ("upstream", "model", "finetune", "merge", "alpha", "downstream", "seed")


def open_store(output: Path) -> Store:
    """The store of ``output`` for reading; one sentence when the folder holds none."""
    if not (Path(output) / DB_NAME).is_file():
        raise HarnessError(f"{output} holds no results store ({DB_NAME}); give the output folder of `harness run`.")
    return Store(output, readonly=True)


def metric_rows(output: Path) -> list[dict[str, Any]]:
    """Every metric of the finished stages in ``output``: ``stage``, ``kind``, the :data:`LABELS`, ``task``,
    ``metric`` (``task.name``), ``value``, ``direction``, ``n_items``, ``items_path`` and ``current`` (false for a
    stage that a later run of the same cell replaced after the recipe changed, see
    :func:`harness.core.store.replaced_keys`)."""
    with open_store(output) as store:
        stages = {s.key: s for s in store.stages(status="done")}
        metrics = store.metrics()
        planned = store.planned()
    replaced = replaced_keys(stages.values(), planned)
    rows = []
    for m in metrics:
        stage = stages.get(m.stage)
        if stage is None:
            continue
        labels = {name: stage.labels.get(name) for name in LABELS}
        rows.append({"stage": m.stage, "kind": StageKind(stage.kind).value, **labels, "task": m.task,
                     "metric": m.full_name, "value": m.value, "direction": m.direction, "n_items": m.n_items,
                     "items_path": m.items_path, "current": m.stage not in replaced})
    return rows
