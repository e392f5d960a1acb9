"""A SUPERB score that covers only some of its reference's tasks says so ("(1 of 2 tasks)") in
`harness score`, the run summary and the leaderboard; a complete score prints as before."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from harness.cli import main
from harness.cli.results_cmd import print_scores
from harness.core.plan import build_plan
from harness.core.recipe import load_recipe
from harness.evaluation.scoring import SUPERB_2024, coverage, superb_score
from harness.pipeline.executors.local import LocalExecutor
from harness.pipeline.run import run_plan
from harness.report.leaderboard import Settings, build, render
from tests.core_helpers import toy_manager, write_recipe


def test_coverage_counts_the_reference_tasks():
    table = {"pr.per": (80.0, 2.0), "sf.f1": (70.0, 92.0), "sf.cer": (53.0, 18.0), "sid.acc": (0.1, 95.0)}
    assert coverage(["sid"], table) == (1, 3)
    assert coverage(["pr", "sid", "sf"], table) is None
    assert superb_score({"sid.acc": 50.0}, SUPERB_2024).coverage == (1, 10)
    assert superb_score({"sid.acc": 50.0}, {"sid.acc": (0.1, 95.0)}).coverage is None


def test_score_command_says_how_many_tasks(capsys, tmp_path):
    assert main(["score", "sid.acc=81.86"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "score     859.29 (1 of 10 tasks)"
    assert main(["score", "sid.acc=81.86", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["reference_tasks"] == 10 and list(out["tasks"]) == ["sid"]
    table = tmp_path / "sid.yaml"
    table.write_text("sid.acc: [0.09, 95.25]\n")
    assert main(["score", "--reference", str(table), "sid.acc=81.86"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "score     859.29"  # complete: as before


@pytest.fixture(scope="module")
def toy_runs(tmp_path_factory) -> dict[str, object]:
    """The toy recipe scored against a table of its one task (complete) and of two tasks (partial)."""
    manager = toy_manager()
    outputs = {}
    for name, table in (("complete", "toy_eval.acc: [0.0, 100.0]\n"),
                        ("partial", "toy_eval.acc: [0.0, 100.0]\nother.acc: [0.0, 100.0]\n")):
        tmp = tmp_path_factory.mktemp(name)
        path = write_recipe(tmp)
        (tmp / "table.yaml").write_text(table)
        recipe = load_recipe(path, manager)
        assert run_plan(build_plan(recipe, manager), recipe.output, LocalExecutor(manager)).ok
        outputs[name] = recipe.output
    return {"manager": manager, **outputs}


def _summary(output) -> list[str]:
    console = Console(record=True, width=200)
    print_scores(output, console)
    return [line for line in console.export_text().splitlines() if "│" in line and "score" not in line]


def test_run_summary_marks_a_partial_score(toy_runs):
    partial = _summary(toy_runs["partial"])
    assert len(partial) == 3 and all(line.rstrip(" │").endswith("(1 of 2 tasks)") for line in partial)
    assert not any("tasks)" in line for line in _summary(toy_runs["complete"]))


def test_leaderboard_marks_a_partial_score(toy_runs):
    settings = Settings(n_resamples=200, n_permutations=200)
    for name, expect in (("partial", True), ("complete", False)):
        board = build(toy_runs[name], settings, toy_runs["manager"])
        cells = [row.cells["superb.score"] for row in board.rows]
        assert len(cells) == 3 and all(c.covers == ((1, 2) if expect else None) for c in cells)
        md_rows = [line for line in render(board, "md").splitlines() if line.startswith("| small |")]
        superb = [line.split(" | ")[-1] for line in md_rows[:3]]
        assert all(s.endswith("(1 of 2 tasks) |") == expect for s in superb), superb
        assert ("(1 of 2 tasks)" in render(board, "html")) == expect
