"""The stage graph: stable keys, deduplication across the product, chains, changes that propagate."""

from __future__ import annotations

import types

import pytest

from harness import hookimpl
from harness.core.plan import _kind_of_tuning, build_plan
from harness.core.recipe import Variant, load_recipe
from harness.core.registry import PluginManager
from harness.training.stable_ft_params import StableFTParams
from tests import toy_plugins
from tests.core_helpers import TOY_RECIPE, toy_manager, write_recipe


@pytest.fixture(scope="module")
def manager():
    return toy_manager()


def plan_for(tmp_path, manager, text=TOY_RECIPE, name="r"):
    return build_plan(load_recipe(write_recipe(tmp_path / name, text), manager), manager)


def test_same_recipe_gives_same_keys(tmp_path, manager):
    a = plan_for(tmp_path, manager, name="a")
    b = plan_for(tmp_path, manager, name="a")
    assert [s.key for s in a.ordered()] == [s.key for s in b.ordered()]


def test_alpha_sweep_shares_one_finetune_and_the_baseline_is_evaluated_once(tmp_path, manager):
    plan = plan_for(tmp_path, manager)
    counts = plan.counts()
    # alpha 0 is the pre-trained model and alpha 1 the fine-tuned one: only alpha 0.25 needs a merge stage
    assert counts == {"prepare": 1, "upstream": 1, "finetune": 1, "merge": 1, "evaluate": 3, "score": 3}
    evaluated = {s.inputs["model"] for s in plan.stages.values() if s.kind == "evaluate"}
    upstream = next(s.key for s in plan.stages.values() if s.kind == "upstream")
    assert upstream in evaluated


def test_seeds_multiply_finetune_and_evaluation_but_not_preparation(tmp_path, manager):
    plan = plan_for(tmp_path, manager, TOY_RECIPE.replace("seeds: [0]", "seeds: [0, 1, 2]"))
    counts = plan.counts()
    assert counts["prepare"] == 1 and counts["upstream"] == 1
    assert counts["finetune"] == 3 and counts["merge"] == 3 and counts["evaluate"] == 9


def test_a_changed_parameter_changes_only_the_keys_downstream_of_it(tmp_path, manager):
    before = plan_for(tmp_path, manager, name="a")
    after = plan_for(tmp_path, manager, TOY_RECIPE.replace("steps: 3", "steps: 4"), name="a")
    ft_before = next(s.key for s in before.stages.values() if s.kind == "finetune")
    affected = {ft_before} | before.dependents(ft_before)
    unchanged = set(before.stages) - affected
    assert unchanged <= set(after.stages)
    assert not (affected & set(after.stages))
    # the pre-trained model's evaluation and the corpus survive the change
    assert {s.kind for s in before.stages.values() if s.key in unchanged} == {"prepare", "upstream", "evaluate",
                                                                               "score"}


def test_an_edited_reference_table_changes_only_the_score_keys(tmp_path, manager):
    before = plan_for(tmp_path, manager, name="a")
    (tmp_path / "a" / "table.yaml").write_text("toy_eval.acc: [10.0, 100.0]\n")
    after = build_plan(load_recipe(tmp_path / "a" / "recipe.yaml", manager), manager)
    changed = set(before.stages) ^ set(after.stages)
    assert {s.kind for s in before.stages.values() if s.key in changed} == {"score"}
    assert len(changed) == 2 * before.counts()["score"]


def test_a_checkpoint_replaced_in_place_changes_the_keys_that_depend_on_it(tmp_path, manager):
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    (checkpoint / "model.safetensors").write_bytes(b"first weights")
    text = TOY_RECIPE.replace("width: 4}}", f"width: 4, checkpoint: {checkpoint}}}}}")
    before = plan_for(tmp_path, manager, text, name="a")
    assert [s.key for s in plan_for(tmp_path, manager, text, name="a").ordered()] == [
        s.key for s in before.ordered()
    ]
    (checkpoint / "model.safetensors").write_bytes(b"other weights")
    after = plan_for(tmp_path, manager, text, name="a")
    upstream = next(s.key for s in before.stages.values() if s.kind == "upstream")
    changed = {upstream} | before.dependents(upstream)
    assert set(before.stages) - set(after.stages) == changed
    assert {s.kind for s in before.stages.values() if s.key not in changed} == {"prepare"}


def test_group_and_chain_merges(tmp_path, manager):
    text = TOY_RECIPE.replace("  ft: {{plugin: toy_ft, corpus: nums, steps: 3}}\n",
                              "  ft: {{plugin: toy_ft, corpus: nums, steps: 3}}\n"
                              "  ft2: {{plugin: toy_ft, corpus: nums, steps: 2}}\n")
    text = text.replace("  interp: {{plugin: toy_merge, alpha: [0.0, 0.25, 1.0]}}\n",
                        "  avg: {{plugin: toy_merge, alpha: 0.5, models: [ft, ft2]}}\n"
                        "  seq: {{plugin: toy_chain, alpha: 0.25, models: [ft, ft2]}}\n")
    plan = plan_for(tmp_path, manager, text)
    merges = [s for s in plan.stages.values() if s.kind == "merge"]
    group = [m for m in merges if m.plugin == "toy_merge"]
    chain = [m for m in merges if m.plugin == "toy_chain"]
    assert len(group) == 1 and set(group[0].inputs) == {"base", "models.0", "models.1"}
    assert len(chain) == 2
    first, second = sorted(chain, key=lambda s: s.key in {v for c in chain for v in c.inputs.values()},
                           reverse=True)
    # the second link's base is the first link's output, and its fine-tuning started from it too
    assert second.inputs["base"] == first.key
    assert plan.stages[second.inputs["models.0"]].inputs["model"] == first.key
    models = {s.labels["model"] for s in plan.stages.values() if s.kind == "score"}
    assert models == {"pre-trained", "ft (fine-tuned)", "ft2 (fine-tuned)", "ft+ft2 · avg", "ft+ft2 · seq"}


def test_a_measured_reference_adds_the_upstream_marked_as_baseline_under_its_name(tmp_path):
    class Anchor(toy_plugins.ToyUpstream):
        name = "toy_anchor"
        trainable = False
        baseline = True

    module = types.ModuleType("anchor_plugin")

    @hookimpl
    def harness_register_upstream(registry):
        registry.add(Anchor)

    module.harness_register_upstream = harness_register_upstream
    manager = PluginManager(modules=[(toy_plugins, "toy-tests", "0.0"), (module, "anchor-pkg", "0")],
                            entry_points=False)
    plan = build_plan(load_recipe(write_recipe(tmp_path, TOY_RECIPE, table="measured"), manager), manager)
    loads = {s.labels["upstream"]: s for s in plan.stages.values() if s.kind == "upstream"}
    assert set(loads) == {"small", "toy_anchor"} and loads["toy_anchor"].plugin == "toy_anchor"
    evals = [s for s in plan.stages.values() if s.kind == "evaluate"]
    anchor_evals = {s.key for s in evals if s.labels["upstream"] == "toy_anchor"}
    scores = [s for s in plan.stages.values() if s.kind == "score"]
    assert scores and all(s.inputs["reference.ev"] in anchor_evals for s in scores)

    without = PluginManager(modules=[(toy_plugins, "toy-tests", "0.0")], entry_points=False)
    plan = build_plan(load_recipe(write_recipe(tmp_path / "b", TOY_RECIPE, table="measured"), without), without)
    assert {s.labels["upstream"] for s in plan.stages.values() if s.kind == "upstream"} == {"small"}


@pytest.mark.parametrize(("params", "label"), [
    ({"beta": 0.1, "freeze_cnn": True}, "Stable-FT"),
    ({"beta": 0.0, "freeze_cnn": False}, "regular FT"),
    ({"beta": 0.1, "freeze_cnn": True, "l2_lambda": 0.01}, "Stable-FT + L2"),
    ({"beta": 0.0, "freeze_cnn": False, "l2_lambda": 0.01}, "regular FT + L2"),
    ({"beta": 0.0, "freeze_cnn": True}, "fine-tuned"),   # one of stable fine-tuning's two parts
    ({"beta": 0.1, "freeze_cnn": False}, "fine-tuned"),
])
def test_an_unmerged_model_is_labelled_by_how_it_was_trained(params, label):
    assert _kind_of_tuning(Variant(StableFTParams(**params), {})) == label


def test_a_scenario_without_stable_fine_tuning_s_knobs_labels_its_models_fine_tuned():
    assert _kind_of_tuning(Variant(types.SimpleNamespace(beta=0.1, freeze_cnn=True), {})) == "fine-tuned"


def test_models_and_their_evaluations_carry_their_place_in_the_recipe(tmp_path, manager):
    entry = "  ev: {{plugin: toy_eval, corpus: nums}}"
    text = TOY_RECIPE.replace(entry, entry + "\n  ev2: {{plugin: toy_eval, corpus: nums, scale: 2.0}}")
    plan = plan_for(tmp_path, manager, text)
    ranks = {(s.kind, s.labels["model"], s.labels.get("downstream")): s.labels["rank"]
             for s in plan.stages.values() if s.kind in ("evaluate", "score")}
    # the pre-trained model, then the merges in the order the recipe lists their alphas (alpha 0 is the
    # pre-trained model again, one stage, so its place is taken)
    models = sorted({k[1] for k in ranks}, key=lambda m: ranks[("score", m, None)])
    assert [ranks[("score", m, None)] for m in models] == [[0, 0], [0, 2], [0, 3]]
    assert models[0] == "pre-trained" and "0.25" in models[1]
    for m in models:
        assert ranks[("evaluate", m, "ev")] == [*ranks[("score", m, None)], 0]
        assert ranks[("evaluate", m, "ev2")] == [*ranks[("score", m, None)], 1]


def test_a_score_averages_the_downstreams_its_recipe_names(tmp_path, manager):
    two = TOY_RECIPE.replace("  ev: {{plugin: toy_eval, corpus: nums}}\n",
                             "  ev: {{plugin: toy_eval, corpus: nums}}\n  other: {{plugin: toy_eval, corpus: nums}}\n")
    every = plan_for(tmp_path, manager, two, name="every")
    named = plan_for(tmp_path, manager, two.replace("score: {{reference: {table}}}",
                                                    "score: {{reference: {table}, tasks: [ev]}}"), name="named")
    for plan, tasks in ((every, {"ev": "toy_eval", "other": "toy_eval"}), (named, {"ev": "toy_eval"})):
        scores = [s for s in plan.stages.values() if s.kind == "score"]
        assert scores and all(s.params["tasks"] == tasks for s in scores)
        assert all({r.split(".", 1)[1] for r in s.inputs if r.startswith("eval.")} == set(tasks) for s in scores)
    # evaluations are the same stages either way; only the scores differ
    assert {k for k, s in every.stages.items() if s.kind == "evaluate"} == \
        {k for k, s in named.stages.items() if s.kind == "evaluate"}
