"""`harness plan`'s projection of the float16 frame caches, and of the stages past their budget."""

from __future__ import annotations

import dataclasses
import io

import pytest
import torch
from rich.console import Console

from harness.cli.plan_cmd import frame_cache_table
from harness.core.manifest import PreparedCorpus
from harness.core.plan import build_plan
from harness.core.recipe import load_recipe
from harness.core.stage_kinds import StageKind
from harness.pipeline.executors.local import LocalExecutor
from harness.pipeline.run import run_plan
from harness.pipeline.scale import human_bytes, project_frame_caches
from tests.core_helpers import toy_manager, write_recipe


@pytest.fixture()
def frame_reading_toy(monkeypatch):
    manager = toy_manager()
    monkeypatch.setattr(manager.get("downstream", "toy_eval").cls, "frame_cache", True, raising=False)
    return manager


def _plan(tmp_path, manager):
    path = write_recipe(tmp_path)
    recipe = load_recipe(path, manager)
    return build_plan(recipe, manager), recipe.output


def test_size_is_unknown_until_the_corpus_is_prepared(tmp_path, frame_reading_toy):
    plan, output = _plan(tmp_path, frame_reading_toy)
    (proj,) = project_frame_caches(plan, output, frame_reading_toy)
    assert (proj.upstream, proj.corpus, proj.models) == ("small", "nums", 3)  # θ0, two merges
    assert proj.bytes_per_model is None and proj.total_bytes is None
    assert proj.unknown == "prepare nums has not run yet (sizes come from its durations)"
    text = io.StringIO()
    Console(file=text, width=200).print(frame_cache_table([proj, dataclasses.replace(proj, corpus="other")]))
    rows = [line for line in text.getvalue().splitlines() if line.startswith("│")]
    assert len(rows) == 2 and all(line.count("unknown") == 2 for line in rows)
    assert text.getvalue().count("prepare nums has not run yet") == 1  # the reason once, under the table
    assert "unknown: prepare nums has not run yet (sizes come from its durations)." in text.getvalue()


def test_size_is_frames_times_layers_times_dim_times_two_per_model(tmp_path, frame_reading_toy):
    plan, output = _plan(tmp_path, frame_reading_toy)
    assert run_plan(plan, output, LocalExecutor(frame_reading_toy, device="cpu")).ok
    (proj,) = project_frame_caches(plan, output, frame_reading_toy)
    corpus = PreparedCorpus(output / next(s.key for s in plan.stages.values() if s.kind == StageKind.PREPARE))
    model = frame_reading_toy.create("upstream", "toy_up").build(
        frame_reading_toy.get("upstream", "toy_up").cls.Params(width=4), 0)
    hop = int(model.frame_shift * model.sample_rate)
    frames = sum(int(round(float(r["duration"]) * 16000)) // hop for s in corpus.splits for r in corpus.utterances(s))
    assert frames > 0
    assert proj.bytes_per_model == frames * model.num_hidden_states * model.hidden_size * 2
    assert proj.total_bytes == 3 * proj.bytes_per_model and proj.unknown is None and proj.on_the_fly == []
    # a stage whose budget is below the projection runs the upstream on the fly
    ev = next(s for s in plan.ordered() if s.kind == StageKind.EVALUATE)
    ev.params["max_frame_gb"] = (proj.bytes_per_model - 1) / 1e9
    (proj,) = project_frame_caches(plan, output, frame_reading_toy)
    assert proj.on_the_fly == [ev.title]
    text = io.StringIO()
    Console(file=text, width=200).print(frame_cache_table([proj]))
    assert human_bytes(proj.bytes_per_model) in text.getvalue() and "1 stage(s)" in text.getvalue()
    # a second downstream of one model, extracting in another precision, fills a cache of its own
    plan.stages["bf16"] = dataclasses.replace(ev, key="bf16", params={**ev.params, "extract_precision": "bf16"})
    (proj,) = project_frame_caches(plan, output, frame_reading_toy)
    assert proj.models == 4 and proj.total_bytes == 4 * proj.bytes_per_model


def test_pooled_downstreams_project_nothing(tmp_path):
    manager = toy_manager()  # toy_eval declares no frame cache
    plan, output = _plan(tmp_path, manager)
    assert project_frame_caches(plan, output, manager) == []


def test_human_bytes():
    assert [human_bytes(n) for n in (512, 50_400, 3.6e11)] == ["512 B", "50.4 KB", "360.0 GB"]


def test_architecture_of_a_base_preset_costs_no_memory():
    from harness.core.registry import default_manager

    plugin = default_manager().create("upstream", "hubert")
    with torch.device("meta"):
        model = plugin.build(plugin.Params(preset="base"), 0)
    assert (model.num_hidden_states, model.hidden_size) == (13, 768)
    assert next(model.parameters()).device.type == "meta"
