"""Every shipped recipe: validates without its data (listing the paths it needs) and runs at toy
scale on the embedded corpus with `--preset tiny`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.core.plan import build_plan
from harness.core.recipe import load_recipe
from harness.core.registry import default_manager
from harness.core.store import Store
from harness.pipeline.executors.local import LocalExecutor
from harness.pipeline.run import run_plan

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
EMBEDDED = ("demo.yaml", "demo_evidence.yaml", "pretrain_tiny.yaml")
PAPER = sorted(p.name for p in RECIPES.glob("*.yaml") if p.name not in EMBEDDED)


def test_the_evidence_recipe_is_the_demo_over_three_seeds_sharing_seed_0s_stages():
    manager = default_manager()
    demo = build_plan(load_recipe(RECIPES / "demo.yaml", manager), manager)
    evidence = build_plan(load_recipe(RECIPES / "demo_evidence.yaml", manager), manager)
    assert set(demo.stages) < set(evidence.stages)  # running it after the demo reuses every demo stage
    assert demo.recipe.output == evidence.recipe.output
    seeded = [s for s in evidence.stages.values() if s.kind in ("finetune", "evaluate", "score")]
    assert {s.seed for s in seeded} == {0, 1, 2}
    assert {s.key for s in seeded if s.seed == 0} <= set(demo.stages)
    assert len(seeded) == 3 * len([s for s in demo.stages.values() if s.kind in ("finetune", "evaluate", "score")])


def test_the_paper_recipes_are_all_there():
    assert set(PAPER) >= {"speech_ft_supervised.yaml", "alpha_sweep.yaml", "multitask.yaml", "upstreams.yaml",
                          "continued_pretraining.yaml", "nonspeech_audioset.yaml", "timit_asr.yaml"}


DATA_VARS = ("LIBRISPEECH", "VOXCELEB1", "IEMOCAP", "SNIPS", "TIMIT", "TEDLIUM3", "CREMA_D", "AISHELL3", "AUDIOSET",
             "CHECKPOINTS")


@pytest.mark.parametrize("name", PAPER)
def test_plan_without_data_lists_the_paths_it_needs(name, monkeypatch):
    for var in DATA_VARS:
        monkeypatch.delenv(var, raising=False)
    recipe = load_recipe(RECIPES / name, default_manager(), allow_unset=True)
    assert recipe.inputs and recipe.missing_inputs() == recipe.inputs
    assert all("${" in str(p) for p in recipe.inputs.values())
    assert build_plan(recipe, default_manager()).counts()["evaluate"] > 0


def test_cli_plan_lists_paths_and_run_refuses_without_data(monkeypatch):
    for var in DATA_VARS:
        monkeypatch.delenv(var, raising=False)
    recipe = str(RECIPES / "timit_asr.yaml")
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "plan", recipe, "--json"], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    inputs = json.loads(proc.stdout)["inputs"]
    assert inputs == {"corpora.timit.root": {"path": "${TIMIT}", "exists": False},
                      "upstreams.wav2vec2_base.checkpoint": {"path": "${CHECKPOINTS}/wav2vec_small.pt",
                                                             "exists": False}}
    refused = subprocess.run([sys.executable, "-m", "harness.cli", "run", recipe], capture_output=True, text=True)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "environment variables CHECKPOINTS, TIMIT are not set" in refused.stderr


@pytest.mark.parametrize("name", PAPER)
def test_recipe_runs_at_toy_scale(name, tmp_path):
    plugins = default_manager()
    recipe = load_recipe(RECIPES / name, plugins, preset="tiny", output=tmp_path / "out")
    assert not recipe.missing_inputs()
    plan = build_plan(recipe, plugins)
    summary = run_plan(plan, recipe.output, LocalExecutor(plugins))
    assert summary.ok, summary.failed
    with Store(recipe.output, readonly=True) as store:
        scores = [m for m in store.metrics() if m.full_name == "superb.score"]
    score_stages = {s.key for s in plan.stages.values() if s.kind == "score"}
    assert {m.stage for m in scores} == score_stages
