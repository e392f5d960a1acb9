"""Training curves in the HTML leaderboard: one panel per fine-tuning run, read from its curves/*.jsonl."""

from __future__ import annotations

import base64
import json
import re

from harness.core.plan import build_plan
from harness.core.recipe import load_recipe
from harness.pipeline.executors.local import LocalExecutor
from harness.pipeline.run import run_plan
from harness.report import leaderboard
from harness.report.curves import finetune_curves
from tests.core_helpers import toy_manager, write_recipe


def test_the_html_page_plots_each_fine_tunings_curve(tmp_path):
    manager = toy_manager()
    recipe = load_recipe(write_recipe(tmp_path), manager)
    plan = build_plan(recipe, manager)
    assert run_plan(plan, recipe.output, LocalExecutor(manager)).ok
    board = leaderboard.build(recipe.output, plugins=manager)
    assert "curves-section" not in leaderboard.render(board, "html")  # the toy fine-tuning writes no curve
    finetune = next(s for s in plan.stages.values() if s.kind == "finetune")
    folder = recipe.output / finetune.key / "curves"
    folder.mkdir()
    lines = [{"step": s, "loss": 2.0 / s if s != 3 else None, "lr": 0.1} for s in range(1, 7)]
    lines.insert(4, {"step": 4, "dev": {"per": 40.0}})
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    [curve] = finetune_curves(recipe.output)
    assert curve.label == "small · ft (seed 0)"
    assert curve.steps == [1, 2, 3, 4, 5, 6] and curve.loss[2] is None and curve.dev == {"per": [(4, 40.0)]}
    page = leaderboard.render(board, "html")
    section = re.search(r'<section id="curves-section">.*?</section>', page, re.S).group(0)
    svg = base64.b64decode(re.search(r"base64,([A-Za-z0-9+/=]+)", section).group(1)).decode()
    assert "small · ft (seed 0)" in svg and "dev per" in svg


def test_panels_follow_the_plan_whatever_order_the_fine_tunings_started_in(tmp_path):
    import sqlite3

    from harness.core.store import DB_NAME
    from tests.core_helpers import TOY_RECIPE

    manager = toy_manager()
    text = TOY_RECIPE.replace("seeds: [0]", "seeds: [0, 1]").replace(
        "  ft: {{plugin: toy_ft, corpus: nums, steps: 3}}",
        "  ft: {{plugin: toy_ft, corpus: nums, steps: 3}}\n  ft2: {{plugin: toy_ft, corpus: nums, steps: 4}}")
    recipe = load_recipe(write_recipe(tmp_path, text), manager)
    plan = build_plan(recipe, manager)
    assert run_plan(plan, recipe.output, LocalExecutor(manager)).ok
    finetunes = [s for s in plan.stages.values() if s.kind == "finetune"]
    planned = [f"small · {s.labels['finetune']} (seed {s.seed})" for s in finetunes]
    assert planned == ["small · ft (seed 0)", "small · ft2 (seed 0)", "small · ft (seed 1)", "small · ft2 (seed 1)"]
    for stage in finetunes:
        folder = recipe.output / stage.key / "curves"
        folder.mkdir()
        (folder / "train.jsonl").write_text(json.dumps({"step": 1, "loss": 1.0, "lr": 0.1}) + "\n")
    with sqlite3.connect(recipe.output / DB_NAME) as db:  # as overlapped stages may start: last planned first
        for i, stage in enumerate(finetunes):
            db.execute("UPDATE stages SET started = ? WHERE key = ?", (100.0 - i, stage.key))
    assert [c.label for c in finetune_curves(recipe.output)] == planned
    with sqlite3.connect(recipe.output / DB_NAME) as db:  # a store from before the label: start order
        for stage in finetunes:
            db.execute("UPDATE stages SET labels = json_remove(labels, '$.rank') WHERE key = ?", (stage.key,))
    assert [c.label for c in finetune_curves(recipe.output)] == planned[::-1]
