"""Which α a study would choose without looking at its test results.

Each model's SUPERB score on the dev sets: every evaluation's dev value (a probe's at the step it kept; QbE's
at the layer it chose on dev), scored against the reference its test score used (FBank's own dev values for
``measured``), mean over seeds. Per sweep over α (:func:`harness.report.leaderboard.rows.alpha_sweeps`), the α
with the highest dev score is the choice. The paper fixes α = 0.25 from test-set numbers (its Table 9); on a new
task or model, choosing α on the dev sets keeps the test sets for the final number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.core.errors import HarnessError
from harness.core.store import StageRow
from harness.evaluation import scoring
from harness.report.leaderboard.cell_data import CellReader
from harness.report.leaderboard.model import SUPERB, AlphaChoice, Row
from harness.report.leaderboard.rows import alpha_sweeps


def dev_values(metrics_json: dict[str, Any]) -> dict[str, float]:
    """``task.metric`` -> the dev value an evaluation kept: its ``extra.dev``, or, for a downstream that chose
    one layer on dev (QbE), that layer's dev values in ``extra.layers``; empty where it kept none."""
    task, extra = metrics_json.get("task"), metrics_json.get("extra") or {}
    values = extra.get("dev")
    if not isinstance(values, dict) and isinstance(extra.get("best_layer"), int):
        values = (extra.get("layers") or {}).get(f"layer{extra['best_layer']}")
    if not isinstance(values, dict):
        return {}
    return {f"{task}.{m}": float(v) for m, v in values.items() if isinstance(v, int | float)}


def seed_dev_score(reader: CellReader, score: StageRow) -> float | None:
    """One seed's SUPERB score on the dev sets, from the evaluations its score stage read; None where a task of
    its test score kept no dev value or the reference cannot be built."""
    found: dict[str, dict[str, dict[str, float]]] = {"eval": {}, "reference": {}}  # role -> "test"|"dev" -> values
    directions: dict[str, str] = {}
    for role, key in score.inputs.items():
        data = reader.stage_json(key, "metrics.json") or {}
        task = data.get("task")
        directions.update({f"{task}.{m}": d for m, d in (data.get("directions") or {}).items()})
        kind = role.split(".", 1)[0]
        if kind in found:
            test = {f"{task}.{m}": float(v) for m, v in (data.get("metrics") or {}).items()}
            found[kind].setdefault("test", {}).update(test)
            found[kind].setdefault("dev", {}).update(dev_values(data))
    reference = str(score.params.get("reference"))
    try:
        scored = scoring.superb_score(found["eval"].get("test", {}), scoring.reference_table(
            reference, found["reference"].get("test"), directions), strict=False)
        dev = scoring.superb_score(found["eval"].get("dev", {}), scoring.reference_table(
            reference, found["reference"].get("dev"), directions), strict=False)
    except HarnessError:  # no value in the table, a non-finite one, or a reference file gone
        return None
    return dev.score if set(scored.tasks) <= set(dev.tasks) else None


def dev_score(reader: CellReader, key: tuple) -> float | None:
    """A model's SUPERB score on the dev sets, mean over its seeds (None unless every seed has one)."""
    values = [seed_dev_score(reader, stage) for stage in reader.score_index.get(key, {}).values()]
    if not values or any(v is None for v in values):
        return None
    return float(np.mean(values))


def alpha_choices(rows: Sequence[Row]) -> list[AlphaChoice]:
    """Every sweep over α with each model's dev and test SUPERB score and the α of the highest dev score (a sweep
    none of whose models has a dev score is left out)."""
    out = []
    for sweep in alpha_sweeps(rows, SUPERB):
        alphas = list(sweep.points)
        dev = [sweep.points[a].dev_superb for a in alphas]
        if all(v is None for v in dev):
            continue
        known = all(v is not None and math.isfinite(v) for v in dev)
        chosen = max(alphas, key=lambda a: sweep.points[a].dev_superb) if known else None
        out.append(AlphaChoice(sweep.upstream, sweep.finetune, sweep.merge, alphas,
                               [sweep.points[a].model for a in alphas], dev,
                               [sweep.points[a].cells[SUPERB].mean for a in alphas], chosen))
    return out
