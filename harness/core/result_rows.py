"""The flat rows of one or several results stores: one per stored metric with its stage's labels, read by
`harness results` and ``harness.results()`` (a ``pandas.DataFrame`` away)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError
from harness.core.stage_kinds import StageKind
from harness.core.store import DB_NAME, MetricRow, StageRow, Store, replaced_keys

#: the stage labels copied into every row (what the leaderboard groups by)
LABELS = ("upstream", "model", "finetune", "merge", "alpha", "downstream", "seed")

#: one output folder, or several read as one
Outputs = str | Path | Sequence[str | Path]


def distinct_outputs(outputs: Outputs) -> list[Path]:
    """The output folders in ``outputs`` in the order given, each once (the same folder named twice, or by two
    paths, is read once)."""
    given = [Path(outputs)] if isinstance(outputs, (str, Path)) else [Path(o) for o in outputs]
    return [o for k, o in enumerate(given) if o.resolve() not in {g.resolve() for g in given[:k]}]


def open_store(output: Path) -> Store:
    """The store of ``output`` for reading; one sentence when the folder holds none."""
    if not (Path(output) / DB_NAME).is_file():
        raise HarnessError(f"{output} holds no results store ({DB_NAME}); give the output folder of `harness run`.")
    return Store(output, readonly=True)


def stored_stages(outputs: Outputs) -> list[StageRow]:
    """Every stage of the stores in ``outputs``, whatever its status; a stage key found in several stores (a
    copied folder, the FBank baseline two runs evaluated) is listed once, from the first."""
    found: dict[str, StageRow] = {}
    for output in distinct_outputs(outputs):
        with open_store(output) as store:
            for stage in store.stages():
                found.setdefault(stage.key, stage)
    return list(found.values())


def add_planned(planned: dict[str, tuple[str, float]], more: dict[str, tuple[str, float]]) -> None:
    """Fold one store's plan (:meth:`Store.planned`: cell -> stage key, when) into ``planned``, the plan of several
    stores read as one: a cell two stores planned keeps the later plan."""
    for cell, (key, when) in more.items():
        if cell not in planned or when > planned[cell][1]:
            planned[cell] = (key, when)


def metric_rows(outputs: Outputs) -> list[dict[str, Any]]:
    """Every metric of the finished stages in ``outputs`` (an output folder or several, read as one store as
    the leaderboard reads them): ``output`` (the folder holding the stage), ``stage``, ``kind``, the
    :data:`LABELS`, ``task``, ``metric`` (``task.name``), ``value``, ``direction``, ``n_items``, ``items_path``
    (under ``output``) and ``current`` (false for a stage that a later run of the same cell replaced after the
    recipe changed, see :func:`harness.core.store.replaced_keys`). A stage found in several stores is read from
    the first."""
    stages: dict[str, StageRow] = {}
    metrics: list[tuple[Path, MetricRow]] = []
    planned: dict[str, tuple[str, float]] = {}
    for output in distinct_outputs(outputs):
        with open_store(output) as store:
            here = {s.key: s for s in store.stages(status="done") if s.key not in stages}
            metrics += [(output, m) for m in store.metrics() if m.stage in here]
            add_planned(planned, store.planned())
        stages.update(here)
    replaced = replaced_keys(stages.values(), planned)
    rows = []
    for output, m in metrics:
        stage = stages[m.stage]
        labels = {name: stage.labels.get(name) for name in LABELS}
        rows.append({"output": str(output), "stage": m.stage, "kind": StageKind(stage.kind).value, **labels,
                     "task": m.task, "metric": m.full_name, "value": m.value, "direction": m.direction,
                     "n_items": m.n_items, "items_path": m.items_path, "current": m.stage not in replaced})
    return rows
