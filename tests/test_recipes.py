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
                          "continued_pretraining.yaml", "nonspeech_audioset.yaml", "timit_asr.yaml",
                          "ablations.yaml", "superb_full.yaml"}


DATA_VARS = ("LIBRISPEECH", "VOXCELEB1", "IEMOCAP", "SNIPS", "TIMIT", "TEDLIUM3", "CREMA_D", "AISHELL3", "AUDIOSET",
             "SPEECH_COMMANDS", "SPEECH_COMMANDS_TEST", "FLUENT_COMMANDS", "QUESST14", "LIBRIMIX_SD", "LIBRI2MIX",
             "COMMON_VOICE_ZH", "CHECKPOINTS")


def _tuning_of_models(name: str, monkeypatch) -> dict[str, tuple[dict, float]]:
    """Each evaluated model's label -> (its fine-tuning stage's parameters, its merge's alpha) in a
    shipped recipe (alpha 1 unmerged; for a merge of several models, the first one's parameters)."""
    for var in DATA_VARS:
        monkeypatch.delenv(var, raising=False)
    manager = default_manager()
    plan = build_plan(load_recipe(RECIPES / name, manager, allow_unset=True), manager)
    out = {}
    for stage in plan.stages.values():
        if stage.kind != "evaluate" or stage.labels["model"] == "pre-trained":
            continue
        model = plan.stages[stage.inputs["model"]]
        alpha = 1.0
        if model.kind == "merge":
            alpha = model.params.get("alpha", 1.0)
            model = plan.stages[next(v for k, v in model.inputs.items() if k != "base")]
        assert model.kind == "finetune"
        out[stage.labels["model"]] = (model.params, alpha)
    return out


def test_the_ablation_recipe_trains_and_merges_as_tables_7_8_and_10_need(monkeypatch):
    models = _tuning_of_models("ablations.yaml", monkeypatch)
    stable, regular = {"beta": 0.1, "freeze_cnn": True}, {"beta": 0.0, "freeze_cnn": False}

    def check(label: str, tuning: dict, alpha: float, l2: float = 0.0) -> None:
        params, merged_at = models.pop(label)
        assert {k: params[k] for k in tuning} == tuning and params["l2_lambda"] == l2 and merged_at == alpha, label

    for task in ("pc_timit", "sid_vox"):
        check(f"{task} · speech_ft alpha=0.25", stable, 0.25)      # Speech-FT (Tables 7, 8)
        for lam in (0.0001, 0.001, 0.01):                           # regularization instead (Table 7)
            check(f"{task}_l2[l2_lambda={lam}] (Stable-FT + L2)", stable, 1.0, lam)
    check("pc_timit_regular · without_stable_ft alpha=0.25", regular, 0.25)  # Table 8
    check("sid_vox_regular · regular alpha=0.25", regular, 0.25)
    check("sid_vox · speech_ft alpha=1.0", stable, 1.0)            # Table 10: stable against regular
    check("sid_vox_regular · regular alpha=1.0", regular, 1.0)
    check("er_cremad (Stable-FT)", stable, 1.0)
    check("er_cremad_regular (regular FT)", regular, 1.0)
    check("pc_timit · speech_ft alpha=1.0", stable, 1.0)           # Stable-FT, as in Table 1
    assert models == {}


def test_the_multitask_recipe_has_table_5_s_single_task_speech_ft(monkeypatch):
    models = _tuning_of_models("multitask.yaml", monkeypatch)
    assert models["pr · single_task alpha=0.25"][0]["task"] == "pr"
    assert models["sid · single_task alpha=0.25"][0]["task"] == "sid"
    assert not any(label.endswith("(Stable-FT)") for label in models)  # each single task only as Speech-FT


#: the longest utterance a fine-tuning batch must hold max_items of (seconds; LibriSpeech's reach 35 s)
LONGEST = {"librispeech": 35, "tedlium": 35, "voxceleb1": 35, "iemocap": 35, "crema_d": 5, "timit": 8}


def _plan(name: str, monkeypatch):
    for var in DATA_VARS:
        monkeypatch.delenv(var, raising=False)
    manager = default_manager()
    return build_plan(load_recipe(RECIPES / name, manager, allow_unset=True), manager)


def test_paper_fine_tuning_follows_appendix_d_and_keeps_the_best_validation_checkpoint(monkeypatch):
    checked = 0
    for name in PAPER:
        for stage in _plan(name, monkeypatch).stages.values():
            if stage.kind != "finetune" or stage.plugin != "supervised" or stage.params["corpus"] not in LONGEST:
                continue
            p, where = stage.params, f"{name}: {stage.title}"
            assert p["max_items"] * p["accumulate"] == (16 if p["task"] == "pc" else 32), where
            assert p["batch_seconds"] >= p["max_items"] * LONGEST[p["corpus"]], where  # max_items is what binds
            assert p["eval_every"] and p["dev_items"] is None, where  # Section 3.1, on the whole dev set
            if p["task"] == "asr":  # TED-LIUM: three LSTM layers; LibriSpeech: one; TIMIT (the guide): linear
                layers = {"tedlium": 3, "librispeech": 1, "timit": 0}[p["corpus"]]
                assert len(p["task_params"]["lstm_dims"]) == layers and p["task_params"]["downsample"] == 1, where
            checked += 1
    assert checked >= 20
    corpora = {s.labels["corpus"]: s.params for s in _plan("speech_ft_supervised.yaml", monkeypatch).stages.values()
               if s.kind == "prepare"}
    assert corpora["tedlium"]["train_hours"] == 100 and corpora["tedlium"]["train_unk"] == "drop"
    assert corpora["librispeech"]["sid_train_hours"] == 10 and corpora["iemocap"]["dev_session"] == 1


def test_the_card_preset_stops_where_the_nonspeech_study_did(monkeypatch):
    for var in DATA_VARS:
        monkeypatch.delenv(var, raising=False)
    manager = default_manager()
    recipe = load_recipe(RECIPES / "nonspeech_audioset.yaml", manager, preset="card", allow_unset=True)
    (stage,) = [s for s in build_plan(recipe, manager).stages.values() if s.kind == "finetune"]
    seconds = stage.params["steps"] * stage.params["accumulate"] * stage.params["batch_seconds"]
    assert seconds / (12.5 * 3600) == pytest.approx(0.48, abs=0.005)  # 0.48 epochs of 12.5 hours


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
