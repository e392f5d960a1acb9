"""The leaderboard's rows and column order: which models a store holds, in table order, which fully
fine-tuned model each Speech-FT merge is compared with, and which models make a sweep over α."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.core.errors import PluginError
from harness.core.registry import PluginManager
from harness.core.store import StageRow
from harness.report.leaderboard.model import BASELINE_FINETUNE, Row
from harness.report.stage_order import in_recipe_order


def task_rank(plugins: PluginManager, task: str) -> tuple[bool, int, str]:
    """Where a task's columns go: by its downstream plugin's ``order``, then name; tasks whose plugin
    is not installed after every other, by name."""
    try:
        order = plugins.get("downstream", task).cls.order
    except PluginError:
        return True, 0, task
    return False, order, task


def row_key(labels: dict[str, Any]) -> tuple:
    """The identity of a leaderboard row (a model over its seeds) from a stage's labels."""
    return (str(labels.get("upstream", "")), str(labels.get("finetune", "")), str(labels.get("merge") or ""),
            json.dumps(labels.get("merge_params"), sort_keys=True, default=str), str(labels.get("model", "")))


def row_of(labels: dict[str, Any]) -> Row:
    """The leaderboard row (no cells or seeds yet) of the model a stage's labels name."""
    upstream, finetune, merge, _, model = row_key(labels)
    alpha = labels.get("alpha")
    return Row(upstream=upstream, model=model or finetune, finetune=finetune, merge=merge,
               merge_params=labels.get("merge_params"), alpha=float(alpha) if alpha is not None else None, seeds=[],
               baseline=finetune == BASELINE_FINETUNE)


def model_rows(stages: list[StageRow]) -> dict[tuple, Row]:
    """The leaderboard's rows (no cells yet) of the models that ``stages`` (evaluate and score stages) measured,
    in table order: by upstream, the pre-trained model first, then by fine-tuning and α."""
    rows: dict[tuple, Row] = {}
    ft_order: dict[str, int] = {}
    up_order: dict[str, int] = {}
    for stage in in_recipe_order(stages):  # upstreams and fine-tunings in recipe order
        labels = stage.labels
        key = row_key(labels)
        up_order.setdefault(key[0], len(up_order))
        ft_order.setdefault(key[1], len(ft_order))
        if key not in rows:
            rows[key] = row_of(labels)
        seed = int(labels.get("seed", 0))
        if seed not in rows[key].seeds:
            rows[key].seeds.append(seed)
    for row in rows.values():
        row.seeds.sort()

    def order(item: tuple[tuple, Row]) -> tuple:
        key, row = item
        alpha = row.alpha if row.alpha is not None else 2.0
        return (up_order[key[0]], not row.baseline, ft_order[key[1]], alpha, row.model)

    return dict(sorted(rows.items(), key=order))


def _without_alpha(params: Any) -> Any:
    return {k: v for k, v in params.items() if k != "alpha"} if isinstance(params, dict) else params


def finetuned_pairs(rows: dict[tuple, Row]) -> dict[tuple, tuple]:
    """Each merge with 0 < α < 1 (Speech-FT) -> the row of its fully fine-tuned model (Stable-FT, α = 1): the
    same upstream, fine-tuning and merge entry with α = 1 (its other swept parameters equal), or else the
    unmerged fine-tuned model of that upstream and fine-tuning. Rows without such a sibling are left out."""
    stable = [(k, r) for k, r in rows.items()
              if not r.baseline and r.alpha is not None and math.isclose(r.alpha, 1.0)]
    out: dict[tuple, tuple] = {}
    for key, row in rows.items():
        if row.baseline or row.alpha is None or not 0.0 < row.alpha < 1.0:
            continue
        same = [k for k, r in stable if (r.upstream, r.finetune) == (row.upstream, row.finetune)]
        merged = [k for k in same if rows[k].merge == row.merge
                  and _without_alpha(rows[k].merge_params) == _without_alpha(row.merge_params)]
        unmerged = [k for k in same if not rows[k].merge]
        if merged or unmerged:
            out[key] = (merged or unmerged)[0]
    return out


@dataclass
class Sweep:
    """The models of one upstream, fine-tuning and merge method at each α: the pre-trained model at α = 0,
    merges at their α, the unmerged fine-tuned model at α = 1 (where no merge of that α exists)."""

    upstream: str
    finetune: str
    merge: str
    points: dict[float, Row]  # α -> its model, α ascending

    @property
    def name(self) -> str:
        """``pr (speech_ft)``: the fine-tuning and the merge method."""
        return self.finetune + (f" ({self.merge})" if self.merge else "")


def alpha_sweeps(rows: Sequence[Row], column: str) -> list[Sweep]:
    """Every sweep over α with at least two values, one of them strictly between 0 and 1, among the rows that
    have ``column`` (a model without it is left out)."""
    out = []
    for upstream in dict.fromkeys(r.upstream for r in rows):
        present = [r for r in rows if r.upstream == upstream and column in r.cells]
        base = next((r for r in present if r.baseline), None)
        merges: dict[str, list[str]] = {}
        for r in present:
            if not r.baseline and r.alpha is not None and r.merge and r.merge not in merges.setdefault(r.finetune, []):
                merges[r.finetune].append(r.merge)
        groups: dict[tuple[str, str], list[Row]] = {}
        for r in present:
            if r.baseline or r.alpha is None:
                continue
            for merge in [r.merge] if r.merge else merges.get(r.finetune, [""]):
                groups.setdefault((r.finetune, merge), []).append(r)
        for (finetune, merge), members in groups.items():
            points: dict[float, Row] = {0.0: base} if base is not None else {}
            for r in sorted(members, key=lambda r: r.alpha):
                points.setdefault(float(r.alpha), r)
            if any(0.0 < a < 1.0 for a in points) and len(points) >= 2:
                out.append(Sweep(upstream, finetune, merge, dict(sorted(points.items()))))
    return out
