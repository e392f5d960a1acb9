"""The paper's numbers beside a run's (``harness leaderboard --paper``): each model of the leaderboard that
reproduces a row of the Speech-FT paper (:data:`harness.report.paper_tables.ROWS`, matched by the shipped recipes'
entry names), with the paper's value, the difference and whether the paper's value lies inside the run's
interval, metric by metric."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from harness.report.leaderboard.dev_choice import SWEPT
from harness.report.leaderboard.model import (
    SUPERB,
    Column,
    Leaderboard,
    PaperMatch,
    PaperValue,
    Row,
)
from harness.report.leaderboard.rows import row_of
from harness.report.paper_tables import PRETRAINED, ROWS, ModelKey, PaperRow

#: the reference the paper's SUPERB scores use; the run's are compared with them only where it uses it too
PAPER_REFERENCE = "superb-2024"


def model_key(row: Row) -> ModelKey:
    """How :data:`ROWS` names a leaderboard row: upstream, fine-tuning entry (without its swept settings), merge
    entry and its α (TIES: ``lambda``); None for a model no merge applies to."""
    if row.baseline:
        return row.upstream, PRETRAINED, "", None
    swept = SWEPT.match(row.finetune)
    finetune = swept["entry"] if swept else row.finetune
    if not row.merge:
        return row.upstream, finetune, "", None
    value = row.alpha
    if value is None and isinstance(row.merge_params, dict) and isinstance(row.merge_params.get("lambda"), int | float):
        value = float(row.merge_params["lambda"])
    return row.upstream, finetune, row.merge, value


def _same(a: ModelKey, b: ModelKey) -> bool:
    if a[:3] != b[:3]:
        return False
    return (a[3] is None) == (b[3] is None) and (a[3] is None or math.isclose(a[3], b[3]))


def paper_row(row: Row, rows: Sequence[PaperRow] = ROWS) -> PaperRow | None:
    """The paper's row that ``row`` reproduces: of those naming its model, the one sharing the most metrics with
    it (the first listed on a tie); None where none names it."""
    key = model_key(row)
    candidates = [r for r in rows if any(_same(key, m) for m in r.models)]
    if not candidates:
        return None
    return max(candidates, key=lambda r: len(set(r.values) & set(row.cells)))  # max keeps the first of equals


def paper_matches(board: Leaderboard, rows: Sequence[PaperRow] = ROWS) -> list[PaperMatch]:
    """Every model of ``board`` that reproduces a paper row, its shared metrics in column order. The SUPERB score is
    compared only where the run scored it against :data:`PAPER_REFERENCE` on the row's tasks."""
    out = []
    for row in board.rows:
        found = paper_row(row, rows)
        if found is None:
            continue
        same_score = board.reference == PAPER_REFERENCE and set(row.cells) == set(found.values)
        values = [_value(col, row, found) for col in board.columns
                  if col.key in row.cells and col.key in found.values and (col.key != SUPERB or same_score)]
        if values:
            out.append(PaperMatch(row.upstream, row.model, found.label, values))
    return out


def _value(col: Column, row: Row, found: PaperRow) -> PaperValue:
    cell = row.cells[col.key]
    return PaperValue(col.key, cell.mean, cell.low, cell.high, found.values[col.key])


def reproducing_models(labels: Iterable[dict[str, Any]]) -> int:
    """How many distinct models among stages' labels reproduce a row of the paper."""
    rows = [row_of(lab) for lab in labels]
    return len({model_key(row) for row in rows if paper_row(row) is not None})
