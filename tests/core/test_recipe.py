"""Recipes: validation messages with key paths and lines, sweeps, variables, presets, input paths."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.core.errors import HarnessError
from harness.core.recipe import load_recipe
from tests.core_helpers import TOY_RECIPE, toy_manager, write_recipe

R = TOY_RECIPE
MALFORMED = {
    "yaml": ("name: x\nupstreams: {{a: [1, 2\n",
             "recipe.yaml line 3: not valid YAML (expected ',' or ']', but got '<stream end>'); fix the syntax there."),
    "top_key": (R.replace("downstreams:", "downstream:"),
                "recipe.yaml line 14: downstream: unknown key; did you mean 'downstreams'?"),
    "plugin_name": (R.replace("plugin: toy_up,", "plugin: toy_upp,"),
                    "recipe.yaml line 8: upstreams.small.plugin: there is no upstream plugin named 'toy_upp'; "
                    "did you mean 'toy_up'?"),
    "no_plugin": (R.replace("{{plugin: toy_up, width: 4}}", "{{width: 4}}"),
                  "recipe.yaml line 8: upstreams.small: missing key 'plugin' (one of: decoar2, fbank, hubert, "
                  "toy_up, wav2vec2)"),
    "param_key": (R.replace("width: 4", "widht: 4"),
                  "recipe.yaml line 8: upstreams.small.widht: unknown key 'widht'; did you mean 'width'?"),
    "param_type": (R.replace("width: 4", "width: wide"),
                   "recipe.yaml line 8: upstreams.small.width: input should be a valid integer, unable to parse "
                   "string as an integer (got 'wide')"),
    "corpus_ref": (R.replace("{{plugin: toy_eval, corpus: nums}}", "{{plugin: toy_eval, corpus: numz}}"),
                   "recipe.yaml line 15: downstreams.ev.corpus: no corpus named 'numz'; did you mean 'nums'?"),
    "no_corpus": (R.replace("{{plugin: toy_eval, corpus: nums}}", "{{plugin: toy_eval}}"),
                  "recipe.yaml line 15: downstreams.ev: missing key 'corpus' (the corpus to evaluate on; "
                  "one of: nums)"),
    "merge_models": (R.replace("alpha: [0.0, 0.25, 1.0]}}", "alpha: 0.5, models: [ft, fx]}}"),
                     "recipe.yaml line 13: merges.interp.models: no fine-tuning entry named 'fx'; did you mean 'ft'?"),
    "seeds": (R.replace("seeds: [0]", "seeds: [zero]"),
              "recipe.yaml line 3: seeds: expected a list of integers such as [0, 1, 2]"),
    "env": (R.replace("{{plugin: toy_corpus, n: 6}}", "{{plugin: toy_corpus, root: \"${{NO_SUCH_VAR_X}}/d\"}}"),
            "recipe.yaml line 6: corpora.nums.root: environment variable NO_SUCH_VAR_X is not set; "
            "export NO_SUCH_VAR_X=/path/to/data or write the path itself"),
    "no_upstream": (R.replace("  small: {{plugin: toy_up, width: 4}}\n", ""),
                    "recipe.yaml line 7: upstreams: the recipe needs at least one upstream (the model under study)"),
    "reference": (R.replace("{{reference: {table}}}", "{{reference: superb-2042}}"),
                  "recipe.yaml line 4: score.reference: unknown reference 'superb-2042'; did you mean "
                  "'superb-2024'? (or give the path of a YAML table)"),
    "score_tasks": (R.replace("{{reference: {table}}}", "{{reference: {table}, tasks: [evv]}}"),
                    "recipe.yaml line 4: score.tasks: 'evv' is no downstream entry of this recipe; did you mean "
                    "'ev'?"),
    "score_key": (R.replace("{{reference: {table}}}", "{{reference: {table}, task: [ev]}}"),
                  "recipe.yaml line 4: score.task: unknown key; did you mean 'tasks'?"),
    "not_mapping": (R.replace("{{plugin: toy_eval, corpus: nums}}", "toy_eval"),
                    "recipe.yaml line 15: downstreams.ev: expected a mapping with a 'plugin' key "
                    "(a downstream plugin name)"),
}


@pytest.fixture(scope="module")
def manager():
    return toy_manager()


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_recipe_has_one_exact_message(case, tmp_path, manager):
    text, expected = MALFORMED[case]
    path = write_recipe(tmp_path, text)
    with pytest.raises(HarnessError) as err:
        load_recipe(path, manager)
    assert str(err.value) == expected


def test_unknown_preset_is_named(tmp_path, manager):
    with pytest.raises(HarnessError, match=r"no preset named 'tiny' \(the recipe defines none\)"):
        load_recipe(write_recipe(tmp_path), manager, preset="tiny")


def test_sweeps_expand_and_list_fields_do_not(tmp_path, manager):
    recipe = load_recipe(write_recipe(tmp_path), manager)
    alphas = [v.params.alpha for v in recipe.entries["merges"]["interp"].variants]
    assert alphas == [0.0, 0.25, 1.0]
    assert [v.label for v in recipe.entries["merges"]["interp"].variants] == ["alpha=0.0", "alpha=0.25", "alpha=1.0"]
    assert recipe.entries["finetune"]["base"].plugin == "none"


def test_env_vars_expand_and_missing_inputs_are_listed_together(tmp_path, manager, monkeypatch):
    monkeypatch.setenv("TOY_DATA", str(tmp_path / "nowhere"))
    text = R.replace("{{plugin: toy_corpus, n: 6}}", "{{plugin: toy_corpus, root: \"${{TOY_DATA}}/corpus\"}}")
    text = text.replace("{{plugin: toy_up, width: 4}}", "{{plugin: toy_up, checkpoint: \"${{TOY_DATA}}/m.pt\"}}")
    recipe = load_recipe(write_recipe(tmp_path, text), manager)
    assert recipe.missing_inputs() == {
        "corpora.nums.root": tmp_path / "nowhere" / "corpus",
        "upstreams.small.checkpoint": tmp_path / "nowhere" / "m.pt",
    }


def test_preset_replaces_entries_and_merges_mappings(tmp_path, manager):
    text = R + "presets:\n  quick:\n    seeds: [3, 4]\n    upstreams:\n      small: {{plugin: toy_up, width: 2}}\n" \
               "    finetune:\n      ft: {{steps: 1}}\n"
    recipe = load_recipe(write_recipe(tmp_path, text), manager, preset="quick")
    assert recipe.seeds == [3, 4]
    assert recipe.entries["upstreams"]["small"].variants[0].params.width == 2
    ft = recipe.entries["finetune"]["ft"].variants[0].params
    assert (ft.steps, ft.corpus) == (1, "nums")


def test_a_null_in_a_preset_drops_the_entry(tmp_path, manager):
    text = R + "presets:\n  quick:\n    merges:\n      interp: null\n"
    recipe = load_recipe(write_recipe(tmp_path, text), manager, preset="quick")
    assert recipe.entries["merges"] == {}
    assert set(recipe.entries["finetune"]) == {"base", "ft"}


def test_cli_reports_a_bad_recipe_in_one_line_with_exit_code_2(tmp_path):
    path = write_recipe(tmp_path, R.replace("downstreams:", "downstream:"))
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "plan", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "recipe.yaml line 14: downstream: unknown key; did you mean 'downstreams'?" in proc.stderr
    missing = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(Path(tmp_path) / "nope.yaml")],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
