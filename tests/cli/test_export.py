"""`harness models` and `harness export`: a run's models by their leaderboard labels, back to transformers
(hidden states equal to ours) or to the harness's folder; `harness merge` over a transformers base."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from harness.cli import main
from harness.core.plan import build_plan
from harness.core.recipe import load_recipe
from harness.core.registry import default_manager
from harness.core.store import StageRow, Store
from harness.models.model_io import load_model, save_model
from harness.pipeline.executors.local import LocalExecutor
from harness.pipeline.run import run_plan
from harness.report.leaderboard import build
from harness.report.models import find_model, run_models
from tests.core_helpers import toy_manager, write_recipe

transformers = pytest.importorskip("transformers")

LABEL = "pr · speech_ft alpha=0.25"


def _stage(key: str, kind: str, labels: dict, inputs: dict | None = None) -> StageRow:
    return StageRow(key=key, kind=kind, plugin="x", name=f"{kind} {key}", params={}, inputs=inputs or {},
                    labels=labels, status="done", started=0.0, ended=1.0, duration=1.0, host="h", git_commit=None,
                    versions={}, error=None, messages=[])


def fake_run(out: Path, family: str, preset: str, seeds=(0,)) -> dict[int, torch.nn.Module]:
    """A results store whose evaluations read one merged model per seed (tiny preset weights)."""
    plugins = default_manager()
    plugin = plugins.create("upstream", family)
    models = {}
    with Store(out) as store:
        for seed in seeds:
            model = plugin.build(plugin.Params(preset=preset), seed=seed + 1)
            key = f"merge{seed:012d}"
            save_model(model, out / key)
            labels = {"upstream": family, "finetune": "pr", "merge": "speech_ft", "alpha": 0.25, "model": LABEL,
                      "seed": seed}
            store.record_stage(_stage(key, "merge", labels))
            store.record_stage(_stage(f"eval{seed:013d}", "evaluate", {**labels, "downstream": "pr"},
                                      {"model": key, "corpus": "c"}))
            models[seed] = model
    return models


def _speech(n: int = 12000) -> torch.Tensor:
    torch.manual_seed(0)
    t = torch.arange(n) / 16000
    return (0.3 * torch.sin(2 * torch.pi * 180 * t) + 0.05 * torch.randn(n))[None]


@pytest.mark.parametrize("family", ["hubert", "wav2vec2"])
def test_export_to_transformers_round_trips_hidden_states(tmp_path, family, capsys):
    models = fake_run(tmp_path / "run", family, "tiny")
    assert main(["export", str(tmp_path / "run"), "--model", LABEL, "--format", "hf", "--out",
                 str(tmp_path / "hf")]) == 0
    assert f"exported {family} · {LABEL}, seed 0" in capsys.readouterr().out
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["model_type"] == family
    hf, info = transformers.AutoModel.from_pretrained(tmp_path / "hf", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert "masked_spec_embed" in load_file(str(tmp_path / "hf" / "model.safetensors"))
    ours = models[0].eval()
    wav = _speech()
    with torch.no_grad():
        expected = ours(wav, torch.tensor([wav.shape[1]])).hidden_states
        got = hf.eval()(wav, output_hidden_states=True).hidden_states
    assert len(got) == len(expected) == ours.num_hidden_states
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    # and back: our upstream loads the exported folder with the same weights
    plugin = default_manager().create("upstream", family)
    again = plugin.build(plugin.Params(checkpoint=str(tmp_path / "hf")), seed=0)
    assert all(torch.equal(again.state_dict()[k], v) for k, v in ours.state_dict().items())


def test_decoar2_exports_to_the_harness_folder_only(tmp_path, capsys):
    models = fake_run(tmp_path / "run", "decoar2", "tiny")
    run = str(tmp_path / "run")
    assert main(["export", run, "--model", LABEL, "--format", "hf", "--out", str(tmp_path / "x")]) == 2
    assert "a decoar2 model exports as harness, not 'hf'; pass --format harness." in capsys.readouterr().err
    assert main(["export", run, "--model", "merge000000", "--out", str(tmp_path / "own")]) == 0
    loaded = load_model(tmp_path / "own", default_manager())
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in models[0].state_dict().items())


def test_model_selection_errors(tmp_path, capsys):
    fake_run(tmp_path / "run", "hubert", "tiny", seeds=(0, 1))
    out = tmp_path / "run"
    assert find_model(out, LABEL, seed=1).stage == "merge000000000001"
    assert find_model(out, "merge000000000001").seed == 1
    assert find_model(out, str(out / "merge000000000000")).seed == 0
    assert main(["export", str(out), "--model", LABEL, "--out", str(tmp_path / "e")]) == 2
    assert f"'{LABEL}' has one model per seed (0, 1); pick one with --seed." in capsys.readouterr().err
    assert main(["export", str(out), "--model", "nothing", "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert f"has no model 'nothing'; `harness models {out}` lists them" in " ".join(err.split())
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    assert main(["export", str(out), "--model", LABEL, "--seed", "0", "--out", str(tmp_path / "full")]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err


def test_models_lists_the_leaderboards_labels(tmp_path, capsys):
    manager = toy_manager()
    recipe = load_recipe(write_recipe(tmp_path), manager)
    assert run_plan(build_plan(recipe, manager), recipe.output, LocalExecutor(manager)).ok
    board = build(recipe.output, plugins=manager)
    models = run_models(recipe.output)
    evaluated = [m for m in models if m.evaluated]
    assert [m.label for m in evaluated] == [r.model for r in board.rows]
    for m in evaluated:
        assert (m.folder / "model.safetensors").is_file() and m.folder.name == m.stage
    assert main(["models", str(recipe.output), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [m["label"] for m in listed] == [m.label for m in models]
    assert {m["kind"] for m in listed} <= {"upstream", "finetune", "merge"}


def test_merge_of_a_transformers_base_with_its_fine_tune(tmp_path, capsys):
    """The base keeps masked_spec_embed; a fine-tune from it (or an older one without it) merges, and the
    result is a transformers folder again."""
    cfg = transformers.HubertConfig(hidden_size=96, num_hidden_layers=2, intermediate_size=192,
                                    num_attention_heads=4, conv_dim=[32] * 7, num_conv_pos_embeddings=16,
                                    num_conv_pos_embedding_groups=4)
    torch.manual_seed(0)
    transformers.HubertModel(cfg).save_pretrained(tmp_path / "base")
    plugin = default_manager().create("upstream", "hubert")
    tuned = plugin.build(plugin.Params(checkpoint=str(tmp_path / "base")), seed=0)
    with torch.no_grad():
        for p in tuned.parameters():
            p.add_(0.1)
    save_model(tuned, tmp_path / "ft")
    base = load_file(str(tmp_path / "base" / "model.safetensors"))
    assert torch.equal(tuned.masked_spec_embed, base["masked_spec_embed"])
    args = ["merge", "--method", "linear", "--base", str(tmp_path / "base"), "--param", "alpha=0.5"]
    assert main([*args, "--models", str(tmp_path / "ft"), "--out", str(tmp_path / "m")]) == 0
    merged = load_file(str(tmp_path / "m" / "model.safetensors"))
    name = "encoder.layers.0.attention.q_proj.weight"
    torch.testing.assert_close(merged[name], base[name] + 0.05)
    assert torch.equal(merged["masked_spec_embed"], base["masked_spec_embed"])
    _, info = transformers.AutoModel.from_pretrained(tmp_path / "m", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    # a fine-tuned model saved before masked_spec_embed was kept
    old = load_file(str(tmp_path / "ft" / "model.safetensors"))
    old.pop("masked_spec_embed")
    save_file(old, str(tmp_path / "ft" / "model.safetensors"))
    assert main([*args, "--models", str(tmp_path / "ft"), "--out", str(tmp_path / "m2")]) == 0
    assert torch.equal(load_file(str(tmp_path / "m2" / "model.safetensors"))["masked_spec_embed"],
                       base["masked_spec_embed"])
    # and our upstream still loads it (the absent weight keeps its initial value)
    assert load_model(tmp_path / "ft", default_manager()).masked_spec_embed.shape == (96,)
