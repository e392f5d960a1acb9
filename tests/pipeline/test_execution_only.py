"""Execution-only parameters (a cache budget, checkpoints): out of the stage key, so changing one reuses
finished stages and says so; the stage still runs with the value given, and its outcome and provenance
record it."""

from __future__ import annotations

import json
import re
from typing import Annotated

from pydantic import Field

from harness.cli import main
from harness.core.interfaces import EXECUTION_ONLY, PluginParams
from harness.core.params import describe_params, execution_only_fields, keyed_params
from harness.core.store import Store
from harness.pipeline.execute import read_outcome
from harness.report.provenance import provenance
from tests.core_helpers import write_recipe

BATCH_2 = ["--set", "downstreams.ev.batch=2"]


class _Params(PluginParams):
    steps: int = 10
    budget: Annotated[float, EXECUTION_ONLY] = Field(4.0, gt=0)
    resume_every: Annotated[int | None, EXECUTION_ONLY] = None


def test_the_key_holds_each_execution_only_field_at_its_default():
    assert execution_only_fields(_Params) == ["budget", "resume_every"]
    assert keyed_params(_Params()) == ({"steps": 10, "budget": 4.0, "resume_every": None}, {})
    keyed, execution = keyed_params(_Params(steps=3, budget=8, resume_every=5))
    assert keyed == {"steps": 3, "budget": 4.0, "resume_every": None}
    assert execution == {"budget": 8.0, "resume_every": 5}
    assert keyed_params(_Params(budget=4.0)) == keyed_params(_Params())  # the default given explicitly
    assert keyed_params(None) == ({}, {})
    said = {p["name"]: p["description"] for p in describe_params(_Params)}  # what `harness plugins NAME` shows
    assert said == {"steps": "", "budget": "execution-only: not part of the stage key",
                    "resume_every": "execution-only: not part of the stage key"}


def test_the_probe_and_fine_tuning_parameters_that_only_change_how_a_stage_runs():
    from harness.training.stable_ft_params import StableFTParams
    from plugins.downstreams.abx import ABXParams
    from plugins.downstreams.qbe import QbEParams
    from plugins.downstreams.sid import SIDParams

    assert execution_only_fields(SIDParams) == ["cache", "max_frame_gb"]
    assert execution_only_fields(QbEParams) == execution_only_fields(ABXParams) == ["max_frame_gb"]
    assert execution_only_fields(StableFTParams) == ["checkpoint_every", "gradient_checkpointing"]


def _plan(path, capsys, *args: str) -> dict:
    capsys.readouterr()
    assert main(["plan", str(path), *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _evaluations(plan: dict) -> set[str]:
    return {s["key"] for s in plan["stages"] if s["kind"] == "evaluate"}


def test_changing_an_execution_only_parameter_reuses_finished_stages_and_says_so(tmp_path, toy_cli, capsys,
                                                                                 monkeypatch):
    monkeypatch.setattr("harness.cli.plan_cmd.default_manager", lambda: toy_cli)
    path = write_recipe(tmp_path)
    out = tmp_path / "out"
    assert main(["run", str(path), "--device", "cpu"]) == 0
    default_plan = _plan(path, capsys)
    assert not default_plan["reused"]

    planned = _plan(path, capsys, *BATCH_2)
    assert planned["stages"] == default_plan["stages"]  # the same keys
    assert all(c["to_run"] == 0 for c in planned["counts"].values()) and not planned["replaces"]
    assert {r["key"] for r in planned["reused"]} == _evaluations(planned)
    assert all(r["changes"] == ["ev batch 8 → 2"] for r in planned["reused"])
    sentence = (rf"{len(planned['reused'])} finished stages are reused although the recipe now runs them differently "
                r"\(ev batch 8 → 2\): these parameters change how a stage runs, not its results\.")
    assert main(["plan", str(path), *BATCH_2]) == 0
    assert re.search(sentence, " ".join(capsys.readouterr().out.split()))
    assert main(["run", str(path), "--device", "cpu", *BATCH_2]) == 0
    assert re.search(sentence, " ".join(capsys.readouterr().err.split()))
    assert all(read_outcome(out, key).execution == {} for key in _evaluations(planned))  # nothing ran again

    # a fresh folder runs the stages with the value given, under the same keys, and records it
    fresh = tmp_path / "fresh"
    assert main(["run", str(path), "--device", "cpu", "--output", str(fresh), *BATCH_2]) == 0
    assert "reused" not in capsys.readouterr().err
    for key in _evaluations(planned):
        assert read_outcome(fresh, key).execution == {"batch": 2}
        assert json.loads((fresh / key / "metrics.json").read_text())["extra"] == {"batch": 2}
    with Store(fresh, readonly=True) as store, Store(out, readonly=True) as before:
        assert all(s.params["batch"] == 8 for s in store.stages("evaluate"))  # the setting: what results depend on
        assert {(m.stage, m.metric, m.value) for m in store.metrics()} == {
            (m.stage, m.metric, m.value) for m in before.metrics()}
    stages = [s for record in provenance(fresh)["models"] for s in record["stages"]]
    assert {json.dumps(s["execution"]) for s in stages if s["kind"] == "evaluate"} == {'{"batch": 2}'}
    assert all(s["execution"] == {} for s in stages if s["kind"] != "evaluate")
    assert not _plan(path, capsys, "--output", str(fresh), *BATCH_2)["reused"]

    # a change of a keyed parameter replaces the stages; what is said compares the values each runs with
    planned = _plan(path, capsys, "--output", str(fresh), *BATCH_2, "--set", "downstreams.ev.scale=2.0")
    replacing = [r for r in planned["replaces"] if r["key"] in _evaluations(planned)]
    assert replacing and all(r["changes"] == ["ev scale 1.0 → 2.0"] for r in replacing)
    planned = _plan(path, capsys, "--set", "downstreams.ev.scale=2.0", "--output", str(fresh))
    replacing = [r for r in planned["replaces"] if r["key"] in _evaluations(planned)]
    assert replacing and all(r["changes"] == ["ev batch 2 → 8", "ev scale 1.0 → 2.0"] for r in replacing)


def test_an_unquoted_cache_off_in_a_recipe_is_the_execution_only_value_off(tmp_path):
    """YAML reads ``off`` as false; the probe takes it as the word the README writes."""
    from harness.core.plan import build_plan
    from harness.core.recipe import load_recipe
    from harness.core.registry import default_manager

    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"""\
name: r
output: {tmp_path / "out"}
corpora:
  speech: {{plugin: synthetic, n_utterances: 24, n_speakers: 4, n_unseen_speakers: 1}}
upstreams:
  hub: {{plugin: hubert, preset: tiny}}
downstreams:
  sid: {{plugin: sid, corpus: speech, cache: off, max_frame_gb: 8}}
""")
    manager = default_manager()
    plan = build_plan(load_recipe(recipe, manager), manager)
    (stage,) = [s for s in plan.stages.values() if s.kind == "evaluate" and s.labels["upstream"] == "hub"]
    assert stage.execution == {"cache": "off", "max_frame_gb": 8.0}
    assert (stage.params["cache"], stage.params["max_frame_gb"]) == ("auto", 4.0)
    assert stage.run_params["cache"] == "off"


def test_a_store_made_while_execution_only_values_were_in_stage_keys_runs_those_stages_once_more(
        tmp_path, toy_cli, capsys, monkeypatch):
    monkeypatch.setattr("harness.cli.plan_cmd.default_manager", lambda: toy_cli)
    path = write_recipe(tmp_path)
    with monkeypatch.context() as before:  # the stage key as it was: every parameter in it
        before.setattr("harness.core.plan.keyed_params",
                       lambda params: (params.model_dump(mode="json") if params is not None else {}, {}))
        assert main(["run", str(path), "--device", "cpu", *BATCH_2]) == 0
    planned = _plan(path, capsys, *BATCH_2)
    replacing = [r for r in planned["replaces"] if r["key"] in _evaluations(planned)]
    assert replacing and all(r["changes"] == ["ev batch 2 left the stage key"] for r in replacing)
    assert all(not r["changes"] for r in planned["replaces"] if r["key"] not in _evaluations(planned))
    assert main(["plan", str(path), *BATCH_2]) == 0
    said = " ".join(capsys.readouterr().out.split())
    n = len(planned["replaces"])
    assert re.search(rf"{n} stages in \S+ run once more \(ev batch 2 left the stage key\): they were stored while "
                     "execution-only parameters were part of stage keys; the results will be the same.", said), said
