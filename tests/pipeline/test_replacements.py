"""A recipe changed between runs into one folder: `harness plan` and `harness run` say which stages replace
finished ones and what changed, the leaderboard shows what the latest run planned, and running the old
recipe again (all cached) brings its results back."""

from __future__ import annotations

import json
import re

from harness import results
from harness.cli import main
from harness.report import leaderboard as lbm
from harness.report.leaderboard.builder import builder_for
from tests.core_helpers import toy_manager, write_recipe

CHANGE = ["--set", "downstreams.ev.scale=2.0"]


def _current(output) -> set[str]:
    """The evaluate stages whose results count: current in `harness.results`, and the leaderboard's."""
    rows = [r for r in results(output) if r["kind"] == "evaluate"]
    current = {r["stage"] for r in rows if r["current"]}
    assert {s.key for s in builder_for(output, plugins=toy_manager()).reader.evals} == current
    return current


def _plan(path, capsys, *args: str) -> dict:
    capsys.readouterr()
    assert main(["plan", str(path), *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _board_notes(output) -> list[str]:
    return lbm.build(output, lbm.Settings(n_resamples=100, n_permutations=100), plugins=toy_manager()).notes


def test_a_changed_recipe_is_announced_shown_and_can_be_taken_back(tmp_path, toy_cli, capsys, monkeypatch):
    monkeypatch.setattr("harness.cli.plan_cmd.default_manager", lambda: toy_cli)
    path = write_recipe(tmp_path)
    out = tmp_path / "out"
    assert main(["run", str(path), "--device", "cpu"]) == 0
    original = {s["key"] for s in _plan(path, capsys)["stages"] if s["kind"] == "evaluate"}
    assert _current(out) == original and not _board_notes(out)

    planned = _plan(path, capsys, *CHANGE)
    changed = {s["key"] for s in planned["stages"] if s["kind"] == "evaluate"}
    replacing = planned["replaces"]
    assert {r["key"] for r in replacing} >= changed  # every evaluation, and the scores behind them
    assert all(r["changes"] == ["ev scale 1.0 → 2.0"] for r in replacing if r["key"] in changed)
    assert {r["replaces"] for r in replacing} >= original
    assert main(["plan", str(path), *CHANGE]) == 0
    sentence = " ".join(capsys.readouterr().out.split())
    assert re.search(rf"{len(replacing)} stages to run replace finished ones of the same cells in \S+, whose recipe "
                     r"changed \(ev scale 1\.0 → 2\.0\); the store keeps both", sentence)

    assert main(["run", str(path), "--device", "cpu", *CHANGE]) == 0
    assert f"{len(replacing)} stages to run replace finished ones" in " ".join(capsys.readouterr().err.split())
    assert _current(out) == changed
    replaced = f"{len(replacing)} finished stages of this store were replaced by a later run"
    assert any(n.startswith(replaced) for n in _board_notes(out))

    assert not _plan(path, capsys)["replaces"]  # the old stages are all there
    assert main(["run", str(path), "--device", "cpu"]) == 0  # everything cached
    assert _current(out) == original  # the old recipe's results are current again
    assert any(n.startswith(replaced) for n in _board_notes(out))
