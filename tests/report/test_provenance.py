"""Provenance in `harness results --json` and `harness leaderboard --format json`: per model, the recipe,
resolved parameters, checkpoint digests, versions, commit, device and date."""

from __future__ import annotations

import hashlib
import json

import pytest

from harness.cli import main
from harness.core.plan import build_plan
from harness.core.recipe import load_recipe
from harness.core.store import Store
from harness.pipeline.executors.local import LocalExecutor
from harness.pipeline.run import run_plan
from tests.core_helpers import toy_manager, write_recipe


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prov")
    manager = toy_manager()
    path = write_recipe(tmp)
    recipe = load_recipe(path, manager)
    plan = build_plan(recipe, manager)
    assert run_plan(plan, recipe.output, LocalExecutor(manager, device="cpu")).ok  # the device recorded below
    return path, recipe.output, plan


def test_results_json_carries_provenance_per_model(toy_run, capsys):
    path, output, plan = toy_run
    assert main(["results", str(output), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {r["metric"] for r in data["results"]} >= {"toy_eval.acc", "superb.score"}
    text = path.read_text()
    sha = hashlib.sha256(text.encode()).hexdigest()
    assert data["recipes"] == {sha: {"name": "toy", "path": str(path.resolve()), "text": text}}
    models = data["models"]
    assert [m["model"] for m in models] == ["pre-trained", *(f"ft · interp alpha={a}" for a in (0.25, 1.0))]
    with Store(output, readonly=True) as store:
        rows = {s.key: s for s in store.stages()}
    for m in models:
        assert m["recipe"]["sha256"] == sha and m["recipe"]["name"] == "toy"
        weights = (output / m["stage"] / "model.safetensors").read_bytes()
        assert m["checkpoints"]["model_sha256"] == hashlib.sha256(weights).hexdigest()
        assert m["device"] == "cpu" and m["host"]
        assert m["versions"]["torch"] and m["versions"]["python"]
        assert "git_commit" in m and m["date"].endswith("Z")
        kinds = [s["kind"] for s in m["stages"]]
        assert "upstream" in kinds and "evaluate" in kinds and "score" in kinds
        assert kinds.index("upstream") < kinds.index("evaluate")
        for s in m["stages"]:  # the resolved parameters, as the plan keyed them
            assert s["params"] == plan.stages[s["key"]].params == rows[s["key"]].params
            assert s["plugin_version"] == rows[s["key"]].versions["plugin"]
    tuned = next(m for m in models if "alpha=0.25" in m["model"])
    finetune = next(s for s in tuned["stages"] if s["kind"] == "finetune")
    assert finetune["params"]["steps"] == 3


def test_leaderboard_json_rows_carry_their_provenance(toy_run, tmp_path, monkeypatch):
    from harness.report import leaderboard
    from harness.report.provenance import attach

    _, output, _ = toy_run
    board = leaderboard.build(output, plugins=toy_manager())
    data = attach(json.loads(leaderboard.render(board, "json")), output)
    for row in data["rows"]:
        assert [p["seed"] for p in row["provenance"]] == row["seeds"]
        assert all(p["model"] == row["model"] for p in row["provenance"])
    assert len(data["recipes"]) == 1
    # the CLI writes the same
    monkeypatch.setattr("harness.report.leaderboard.builder.default_manager", toy_manager)
    assert main(["leaderboard", str(output), "--format", "json", "--out", str(tmp_path / "b.json")]) == 0
    written = json.loads((tmp_path / "b.json").read_text())
    assert [r["provenance"] for r in written["rows"]] == [r["provenance"] for r in data["rows"]]


def test_a_rerun_with_nothing_to_do_writes_no_provenance_file(toy_run):
    path, output, _ = toy_run
    before = sorted((output / "provenance").iterdir())
    manager = toy_manager()
    recipe = load_recipe(path, manager)
    assert run_plan(build_plan(recipe, manager), recipe.output, LocalExecutor(manager)).ran == []
    assert sorted((output / "provenance").iterdir()) == before and len(before) == 1


def test_each_evaluation_saves_its_predictions(toy_run):
    _, output, plan = toy_run
    evaluations = [s for s in plan.stages.values() if s.kind == "evaluate"]
    assert evaluations
    for stage in evaluations:
        lines = (output / stage.key / "predictions.jsonl").read_text().splitlines()
        predictions = [json.loads(line) for line in lines]
        items = [json.loads(line) for line in (output / stage.key / "items.jsonl").read_text().splitlines()]
        assert [p["id"] for p in predictions] == [i["id"] for i in items]
        assert [float(p["hyp"] == p["ref"]) for p in predictions] == [i["stats"]["acc"][0] for i in items]
