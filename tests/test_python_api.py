"""`harness.run` and `harness.results`: the recipe run from Python, rows a DataFrame takes directly, and
`import harness` still light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import harness
from harness.core.errors import HarnessError
from harness.core.store import Store
from harness.pipeline import python_api
from tests.core_helpers import TOY_RECIPE, toy_manager, write_recipe


def test_import_harness_stays_light():
    code = "import sys, harness; print(sorted(m for m in ('torch', 'harness.core.recipe') if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"
    assert {"run", "results", "leaderboard", "drift"} <= set(dir(harness)) and harness.run is python_api.run
    with pytest.raises(AttributeError):
        harness.nothing  # noqa: B018


def test_run_with_output_and_overrides_then_results(tmp_path, monkeypatch):
    monkeypatch.setattr(python_api, "default_manager", toy_manager)
    path = write_recipe(tmp_path)
    rows = harness.run(path, output=tmp_path / "elsewhere", overrides={"finetune.ft.steps": 5})
    assert not (tmp_path / "out").exists() and (tmp_path / "elsewhere" / "results.sqlite").is_file()
    with Store(tmp_path / "elsewhere", readonly=True) as store:
        finetune = store.stages(kind="finetune")
        stored = {(m.stage, m.full_name): m.value for m in store.metrics()}
    assert [s.params["steps"] for s in finetune] == [5]
    assert rows == harness.results(tmp_path / "elsewhere")
    assert {(r["stage"], r["metric"]): r["value"] for r in rows} == stored
    evals = [r for r in rows if r["metric"] == "toy_eval.acc"]
    assert {r["model"] for r in evals} == {"pre-trained", "ft · interp alpha=0.25", "ft · interp alpha=1.0"}
    assert all(r["downstream"] == "ev" and r["upstream"] == "small" and r["seed"] == 0 for r in evals)
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame(rows)
    assert len(frame) == len(rows) and {"model", "metric", "value"} <= set(frame.columns)


def test_run_raises_the_clis_sentences(tmp_path, monkeypatch):
    monkeypatch.setattr(python_api, "default_manager", toy_manager)
    path = write_recipe(tmp_path, TOY_RECIPE.replace("steps: 3}}", "steps: 3, fail: true}}"))
    with pytest.raises(HarnessError, match=r"^1 stage\(s\) of recipe.yaml did not finish \(first: RuntimeError: "
                                           r"toy failure\); `harness results .* --failed` shows them"):
        harness.run(path)
    with pytest.raises(HarnessError, match="holds no results store"):
        harness.results(tmp_path / "nothing")
    with pytest.raises(HarnessError, match="finetune.ft.stepz"):
        harness.run(path, overrides=["finetune.ft.stepz=5"])
