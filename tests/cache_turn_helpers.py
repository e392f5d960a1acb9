"""Timed toy stages that share a feature cache (tests.toy_plugins' ``toy_eval`` with a timeline): a recipe
and the check that they filled it one after the other in plan order and then ran side by side."""

from __future__ import annotations

from pathlib import Path

from harness.core.plan import Plan
from tests.core_helpers import TOY_RECIPE, write_recipe


def timed_fill_recipe(tmp: Path, fine_tune: bool = True) -> tuple[Path, Path]:
    """Three evaluate stages on one corpus for each model (three, or the pre-trained one alone without
    ``fine_tune``): 0.3 s to fill the cache, 1.5 s more to run. Returns the recipe and the timeline file
    the stages write."""
    timeline = tmp / "timeline.txt"
    entry = "  ev: {{plugin: toy_eval, corpus: nums}}"
    evals = "\n".join(f"  ev{i}: {{{{plugin: toy_eval, corpus: nums, scale: {i}, timeline: {timeline}, "
                      f"fill_seconds: 0.3, train_seconds: 1.5}}}}" for i in (1, 2, 3))
    text = TOY_RECIPE.replace(entry, evals)
    if not fine_tune:
        text = text.replace("  ft: {{plugin: toy_ft, corpus: nums, steps: 3}}\n", "")
        text = text.replace("merges:\n  interp: {{plugin: toy_merge, alpha: [0.0, 0.25, 1.0]}}\n", "")
    return write_recipe(tmp, text), timeline


def assert_filled_in_turn_then_side_by_side(plan: Plan, timeline: Path, models: int = 3) -> None:
    events: dict[str, dict[str, float]] = {}
    for line in timeline.read_text().splitlines():
        key, event, when = line.split()
        events.setdefault(key, {})[event] = float(when)
    by_model: dict[str, list[str]] = {}
    for stage in plan.stages.values():  # plan order
        if stage.kind == "evaluate":
            by_model.setdefault(stage.inputs["model"], []).append(stage.key)
    assert len(by_model) == models and all(len(keys) == 3 for keys in by_model.values())
    side_by_side = 0
    for keys in by_model.values():
        for i, later in enumerate(keys):
            for earlier in keys[:i]:
                assert events[later]["start"] > events[earlier]["filled"]  # filled one after the other
                side_by_side += events[later]["start"] < events[earlier]["end"]
    assert side_by_side  # and ran at once
