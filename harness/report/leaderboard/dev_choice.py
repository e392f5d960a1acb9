"""Which α, or which value of another swept merge or fine-tuning parameter, a study would choose without looking at
its test results.

Each model's SUPERB score on the dev sets: every evaluation's dev value (a probe's at the step it kept; QbE's
at the layer it chose on dev), scored against the reference its test score used (FBank's own dev values for
``measured``), mean over seeds. Per sweep (over α: :func:`harness.report.leaderboard.rows.alpha_sweeps`; over
the swept parameters of a merge without α, TIES's ``lambda``: :func:`merge_sweeps`; over a fine-tuning entry's:
:func:`finetune_sweeps`), the value with the highest dev score is the choice. The paper fixes α = 0.25 from
test-set numbers (its Table 9) and reports its L2 baseline at the best of the penalty weights it tried (Table 7);
choosing on the dev sets keeps the test sets for the final number.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from harness.core.errors import HarnessError
from harness.core.store import StageRow
from harness.evaluation import scoring
from harness.report.leaderboard.cell_data import CellReader
from harness.report.leaderboard.model import SUPERB, Row, SweepChoice
from harness.report.leaderboard.rows import alpha_sweeps


def dev_values(metrics_json: dict[str, Any]) -> dict[str, float]:
    """``task.metric`` -> the dev value an evaluation kept: its ``extra.dev`` (the mean of its folds' for a
    cross-validated result), or, for a downstream that chose one layer on dev (QbE), that layer's dev values in
    ``extra.layers``; empty where it kept none, or where its folds do not each say theirs (results stored before
    they did kept the last fold's alone)."""
    task, extra = metrics_json.get("task"), metrics_json.get("extra") or {}
    folds = extra.get("folds")
    if isinstance(folds, list) and not all(isinstance(f, dict) and isinstance(f.get("dev"), dict) for f in folds):
        return {}
    values = extra.get("dev")
    if not isinstance(values, dict) and isinstance(extra.get("best_layer"), int):
        values = (extra.get("layers") or {}).get(f"layer{extra['best_layer']}")
    if not isinstance(values, dict):
        return {}
    return {f"{task}.{m}": float(v) for m, v in values.items() if isinstance(v, int | float)}


def seed_dev_score(reader: CellReader, score: StageRow) -> float | None:
    """One seed's SUPERB score on the dev sets, from the evaluations its score stage read; None where a task of
    its test score kept no dev value or the reference cannot be built."""
    test: dict[str, dict[str, float]] = {"eval": {}, "reference": {}}  # the model's, FBank's (measured)
    dev: dict[str, dict[str, float]] = {"eval": {}, "reference": {}}
    directions: dict[str, str] = {}
    for role, key in score.inputs.items():
        data = reader.stage_json(key, "metrics.json") or {}
        task = data.get("task")
        directions.update({f"{task}.{m}": d for m, d in (data.get("directions") or {}).items()})
        kind = role.split(".", 1)[0]
        if kind in test:
            test[kind].update({f"{task}.{m}": float(v) for m, v in (data.get("metrics") or {}).items()})
            dev[kind].update(dev_values(data))
    reference = str(score.params.get("reference"))
    try:
        on_test = scoring.superb_score(test["eval"], scoring.reference_table(reference, test["reference"], directions),
                                       strict=False)
        on_dev = scoring.superb_score(dev["eval"], scoring.reference_table(reference, dev["reference"], directions),
                                      strict=False)
    except HarnessError:  # no value in the table, a non-finite one, or a reference file gone
        return None
    return on_dev.score if set(on_test.tasks) <= set(on_dev.tasks) else None


def dev_score(reader: CellReader, key: tuple) -> float | None:
    """A model's SUPERB score on the dev sets, mean over its seeds (None unless every seed has one)."""
    values = [seed_dev_score(reader, stage) for stage in reader.score_index.get(key, {}).values()]
    if not values or any(v is None for v in values):
        return None
    return float(np.mean(values))


#: a fine-tuning label with swept parameters: ``sid_l2[l2_lambda=0.001]`` (:attr:`harness.core.recipe.Variant.label`)
SWEPT = re.compile(r"^(?P<entry>[^\[]+)\[(?P<setting>[^\]]+)\]$")


def finetune_sweeps(rows: Sequence[Row]) -> list[tuple[str, str, str, dict[str, Row]]]:
    """(upstream, sweep, parameter, setting -> model) for every fine-tuning entry whose swept parameters give two
    models or more with a SUPERB score (with the same merge), settings as the recipe wrote them."""
    groups: dict[tuple, dict[str, Row]] = {}
    for r in rows:
        found = SWEPT.match(r.finetune)
        if r.baseline or found is None or SUPERB not in r.cells:
            continue
        merge = json.dumps(r.merge_params, sort_keys=True, default=str)
        groups.setdefault((r.upstream, found["entry"], r.merge, merge, r.alpha), {})[found["setting"]] = r
    out = []
    for (upstream, entry, merge, _, alpha), points in groups.items():
        names = ",".join(part.split("=", 1)[0] for part in next(iter(points)).split(","))
        sweep = entry + (f" · {merge} α={alpha:g}" if merge and alpha is not None else "")
        values = {",".join(part.split("=", 1)[-1] for part in setting.split(",")): r for setting, r in points.items()}
        out.append((upstream, sweep, names, values))
    return [sweep for sweep in out if len(sweep[3]) >= 2]


def merge_sweeps(rows: Sequence[Row]) -> list[tuple[str, str, str, dict[str, Row]]]:
    """(upstream, sweep, parameter, value -> model) for every merge without an α (TIES's ``lambda``, say) whose
    swept parameters give two models or more of one fine-tuning with a SUPERB score."""
    groups: dict[tuple[str, str, str], dict[str, Row]] = {}
    for r in rows:
        if r.baseline or not r.merge or r.alpha is not None or not isinstance(r.merge_params, dict) \
                or not r.merge_params or SUPERB not in r.cells:
            continue
        value = ",".join(str(v) for v in r.merge_params.values())
        groups.setdefault((r.upstream, r.finetune, r.merge), {})[value] = r
    return [(upstream, f"{finetune} ({merge})", ",".join(next(iter(points.values())).merge_params), points)
            for (upstream, finetune, merge), points in groups.items() if len(points) >= 2]


def _choice(upstream: str, sweep: str, parameter: str, points: dict[Any, Row]) -> SweepChoice | None:
    """The sweep's dev and test scores and its choice; None when no model of it has a dev score."""
    values = list(points)
    dev = [points[v].dev_superb for v in values]
    if all(v is None for v in dev):
        return None
    known = all(v is not None and math.isfinite(v) for v in dev)
    chosen = max(values, key=lambda v: points[v].dev_superb) if known else None
    return SweepChoice(upstream, sweep, parameter, values, [points[v].model for v in values], dev,
                       [points[v].cells[SUPERB].mean for v in values], chosen)


def sweep_choices(rows: Sequence[Row]) -> list[SweepChoice]:
    """Every sweep over α, then over other merges' swept parameters, then over fine-tuning entries' ones, with each
    model's dev and test SUPERB score and the value of the highest dev score (a sweep none of whose models has a dev
    score is left out)."""
    found = [(s.upstream, s.name, "α", s.points) for s in alpha_sweeps(rows, SUPERB)]
    found += merge_sweeps(rows) + finetune_sweeps(rows)
    return [c for args in found if (c := _choice(*args)) is not None]
