"""`--set KEY=VALUE`, `--only KIND=NAMES` and `--limit N` on `harness run` / `harness plan`: applied to
the recipe before validation, validated with the YAML's messages, part of the stage keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.core.errors import RecipeError
from harness.core.manifest import PreparedCorpus, write_json, write_jsonl
from harness.core.plan import build_plan
from harness.core.recipe import load_recipe
from harness.data.subset import limit_prepared
from harness.pipeline.executors.local import LocalExecutor
from harness.pipeline.run import run_plan
from harness.report.leaderboard import Settings, build, render
from tests.core_helpers import TOY_RECIPE, toy_manager, write_recipe

ROOT = Path(__file__).resolve().parents[2]
TWO_DOWNSTREAMS = TOY_RECIPE + "  ev2: {{plugin: toy_eval, corpus: nums}}\n"


@pytest.fixture(scope="module")
def manager():
    return toy_manager()


def keys(path: Path, manager, **kwargs) -> dict[str, str]:
    """Stage key by title."""
    recipe = load_recipe(path, manager, **kwargs)
    return {s.title: s.key for s in build_plan(recipe, manager).stages.values()}


def test_set_changes_a_value_and_the_keys_that_depend_on_it(tmp_path, manager):
    path = write_recipe(tmp_path)
    recipe = load_recipe(path, manager, overrides=["finetune.ft.steps=7"])
    assert recipe.entries["finetune"]["ft"].variants[0].params.steps == 7
    before, after = keys(path, manager), keys(path, manager, overrides=["finetune.ft.steps=7"])
    assert before["load small"] == after["load small"] and before["prepare nums"] == after["prepare nums"]
    changed = {t for t in before if t in after and before[t] != after[t]}
    assert any(t.startswith("finetune ft") for t in changed)
    # setting the value the recipe already has changes nothing
    assert keys(path, manager, overrides=["finetune.ft.steps=3"]) == before


def test_set_sweeps_with_a_yaml_list(tmp_path, manager):
    path = write_recipe(tmp_path)
    recipe = load_recipe(path, manager, overrides=["merges.interp.alpha=[0, 0.5]"])
    assert [v.swept for v in recipe.entries["merges"]["interp"].variants] == [{"alpha": 0}, {"alpha": 0.5}]


@pytest.mark.parametrize(("override", "message"), [
    ("finetune.ft.stepz=3", "--set finetune.ft.stepz: unknown key 'stepz'; did you mean 'steps'?"),
    ("finetune.fft.steps=3", "--set finetune.fft.steps: there is no finetune entry named 'fft'; did you mean 'ft'?"),
    ("finetune.ft.steps=abc", "--set finetune.ft.steps: input should be a valid integer, unable to parse string "
                              "as an integer (got 'abc')"),
    ("seedz=[1]", "--set seedz: unknown key 'seedz'; did you mean 'seeds'?"),
    ("finetune.ft.steps", "--set 'finetune.ft.steps' is not of the form KEY.PATH=VALUE; write e.g. "
                          "--set finetune.pr.steps=100."),
])  # fmt: skip
def test_set_errors_name_the_key_and_the_closest_name(tmp_path, manager, override, message):
    with pytest.raises(RecipeError) as err:
        load_recipe(write_recipe(tmp_path), manager, overrides=[override])
    assert str(err.value) == message


def test_only_keeps_the_named_entries(tmp_path, manager):
    path = write_recipe(tmp_path, TWO_DOWNSTREAMS)
    assert set(load_recipe(path, manager).entries["downstreams"]) == {"ev", "ev2"}
    recipe = load_recipe(path, manager, only=["downstream=ev2"])
    assert set(recipe.entries["downstreams"]) == {"ev2"}
    # leaving out the only fine-tuning drops the merges of it: the pre-trained model alone is left
    plan = build_plan(load_recipe(path, manager, only=["finetune=base"]), manager)
    assert plan.counts()["score"] == 1 and "merge" not in plan.counts() and "finetune" not in plan.counts()
    with pytest.raises(RecipeError, match=r"^--only downstream=ev3: the recipe has no downstreams entry named "
                                          r"'ev3'; did you mean 'ev'\?$"):
        load_recipe(path, manager, only=["downstream=ev3"])
    with pytest.raises(RecipeError, match=r"^--only 'model=ev' is not of the form KIND=NAME"):
        load_recipe(path, manager, only=["model=ev"])


def test_plan_command_takes_set_and_only(capsys):
    demo = str(ROOT / "recipes" / "demo.yaml")
    assert main(["plan", demo, "--json"]) == 0
    full = json.loads(capsys.readouterr().out)["counts"]
    assert main(["plan", demo, "--json", "--only", "downstream=pr,sid", "--set", "merges.speech_ft.alpha=[0, 0.5]",
                 "--set", "finetune.pr.steps=100"]) == 0
    cut = json.loads(capsys.readouterr().out)["counts"]
    # 6 models x 5 downstreams; then pre-trained, FBank, pr and sounds at alpha 0.5, x 2 downstreams
    assert full["evaluate"]["stages"] == 30 and cut["evaluate"]["stages"] == 8
    assert main(["plan", demo, "--set", "finetune.pr.stepz=100"]) == 2
    assert capsys.readouterr().err.strip() == ("error: --set finetune.pr.stepz: unknown key 'stepz'; "
                                               "did you mean 'steps'?")


def test_limit_cuts_every_corpus_and_marks_the_models(tmp_path, manager):
    path = write_recipe(tmp_path)
    recipe = load_recipe(path, manager)
    recipe.limit = 4
    plan = build_plan(recipe, manager)
    unlimited = build_plan(load_recipe(path, manager), manager).stages
    assert {plan.stages[k].kind for k in set(plan.stages) & set(unlimited)} == {"upstream"}  # the rest read corpora
    assert run_plan(plan, recipe.output, LocalExecutor(manager)).ok
    (prepare,) = [s for s in plan.stages.values() if s.kind == "prepare"]
    corpus = PreparedCorpus(recipe.output / prepare.key)
    assert [len(corpus.utterances(s)) for s in ("train", "dev", "test")] == [4, 4, 4]
    assert corpus.meta["utterance_limit"] == 4
    board = build(recipe.output, Settings(n_resamples=200, n_permutations=200), manager)
    assert sorted(r.model for r in board.rows) == ["ft · interp alpha=0.25 [limit 4]",
                                                   "ft · interp alpha=1.0 [limit 4]", "pre-trained [limit 4]"]
    assert "| small | pre-trained [limit 4] |" in render(board, "md")


def test_limit_prepared_keeps_abx_items_of_kept_utterances(tmp_path):
    rows = [{"id": f"u{i}", "path": f"u{i}.wav", "duration": 1.0, "speaker": "s"} for i in range(10)]
    write_jsonl(tmp_path / "test.jsonl", rows)
    (tmp_path / "test.item").write_text("#file onset offset #phone prev-phone next-phone speaker\n"
                                        + "".join(f"u{i} 0.1 0.2 a b c s\n" for i in range(10)))
    write_json(tmp_path / "meta.json", {"corpus": "c", "splits": ["test"], "abx_items": {"test": "test.item"}})
    limit_prepared(tmp_path, 3)
    kept = {r["id"] for r in PreparedCorpus(tmp_path).utterances("test")}
    assert len(kept) == 3
    items = (tmp_path / "test.item").read_text().splitlines()
    assert items[0].startswith("#file") and {line.split()[0] for line in items[1:]} == kept
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["n_utterances"] == {"test": 3} and meta["abx_item_counts"] == {"test": 3}
