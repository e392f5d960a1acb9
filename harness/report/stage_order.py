"""Stages in the order the recipe lists them, whatever order they ran in (``--jobs`` starts them out of
plan order): by the ``rank`` label the planner gives models, evaluations and fine-tunings
(:mod:`harness.core.plan`)."""

from __future__ import annotations

from harness.core.store import StageRow

__all__ = ["in_recipe_order"]


def in_recipe_order(stages: list[StageRow]) -> list[StageRow]:
    """``stages`` by their ``rank`` label, not in the order they happened to start. Where any was stored
    without one (a store older than the label), all keep the order they started in, so old entries never
    move below new ones."""
    if any("rank" not in s.labels for s in stages):
        return list(stages)
    return sorted(stages, key=lambda s: tuple(s.labels["rank"]))
