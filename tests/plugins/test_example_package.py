"""The example package's downstream (``intent``, one intent label): found through its entry point,
planned from a recipe and evaluated by the harness on the embedded corpus."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.core.manifest import PreparedCorpus
from harness.core.params import validate_params
from harness.core.plan import build_plan
from harness.core.recipe import load_recipe
from harness.core.registry import PluginManager
from harness.evaluation.metrics import ratio
from tests.downstream_helpers import make_ctx

RECIPE = """\
name: intents
corpora:
  speech: {plugin: synthetic}
upstreams:
  fbank: {plugin: fbank}
downstreams:
  intent: {plugin: intent, corpus: speech, protocol: superb}
"""


def test_the_downstream_is_found_with_its_package():
    manager = PluginManager()
    info = manager.get("downstream", "intent")
    assert info.origin == "harness-plugin-example"
    assert info.module == "harness_plugin_example.intent"
    plugin = manager.create("downstream", "intent")
    assert plugin.Params.__name__ == "ICParams" and plugin.label_fields == ("intent",)
    assert manager.get("downstream", "er").cls.order < plugin.order < manager.get("downstream", "sf").cls.order


def test_a_recipe_plans_an_evaluate_stage_for_it(tmp_path):
    path = tmp_path / "intents.yaml"
    path.write_text(RECIPE)
    manager = PluginManager()
    plan = build_plan(load_recipe(path, manager, output=tmp_path / "out"), manager)
    (stage,) = [s for s in plan.stages.values() if s.kind == "evaluate"]
    assert stage.plugin == "intent" and stage.version == "1@harness-plugin-example"
    assert stage.params["protocol"] == "superb"


@pytest.fixture(scope="module")
def evaluated(synthetic_corpus: Path, tmp_path_factory):
    manager = PluginManager()
    upstream_plugin = manager.create("upstream", "fbank")
    upstream = upstream_plugin.build(upstream_plugin.Params(), seed=0)
    plugin = manager.create("downstream", "intent")
    corpus = PreparedCorpus(synthetic_corpus)
    params = validate_params(plugin.Params, {"steps": 60, "eval_every": 20}, "intent")
    ctx = make_ctx(tmp_path_factory.mktemp("intent"))
    return corpus, upstream, plugin.evaluate(upstream, corpus, params, ctx)


def test_it_evaluates_on_the_embedded_corpus(evaluated):
    corpus, upstream, result = evaluated
    assert result.directions == {"acc": "higher"}
    test_rows = corpus.utterances("test")
    assert result.n_items == len(result.items) == len(test_rows)
    assert {item["id"] for item in result.items} == {r["id"] for r in test_rows}
    assert ratio([item["stats"]["acc"] for item in result.items]) == pytest.approx(result.metrics["acc"])
    assert 0.0 <= result.metrics["acc"] <= 100.0
    assert len(result.layer_weights) == upstream.num_hidden_states
    assert result.extra["source"] == "pooled"  # an utterance task trains on cached per-layer means
