"""A corpus root given relative to the working directory (as the README says) prepares a corpus
whose manifest reads back from any other working directory, through `harness prepare` and through
a recipe's prepare stage; `harness plan` names a relative root that does not exist."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.core.manifest import PreparedCorpus
from harness.core.plan import build_plan
from harness.core.recipe import load_recipe
from harness.core.registry import default_manager
from harness.data import audio
from harness.pipeline.execute import execute_stage
from tests.plugins.test_corpora_loaders import librispeech_tree, voxceleb_tree  # noqa: F401  (fixtures)


def _readable_from_elsewhere(corpus_dir: Path, elsewhere: Path, monkeypatch) -> int:
    """Read every utterance of the prepared corpus from another working directory; return the count."""
    monkeypatch.chdir(elsewhere)
    corpus = PreparedCorpus(corpus_dir)
    rows = [row for split in corpus.splits for row in corpus.utterances(split)]
    for row in rows:
        assert Path(row["path"]).is_absolute(), row["path"]
        assert audio.load(row["path"]).size > 0
    return len(rows)


@pytest.mark.parametrize(("corpus", "tree", "n_rows"), [("voxceleb1", "voxceleb_tree", 8),
                                                       ("librispeech", "librispeech_tree", 4)])
def test_prepare_with_a_relative_root_reads_back_from_another_directory(corpus, tree, n_rows, request, tmp_path,
                                                                       monkeypatch, capsys):
    root: Path = request.getfixturevalue(tree)
    monkeypatch.chdir(root.parent)
    code = main(["prepare", corpus, "--out", "prepared", "--param", f"root={root.name}", "--json"])
    assert code == 0, capsys.readouterr().err
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert _readable_from_elsewhere(root.parent / "prepared", elsewhere, monkeypatch) == n_rows


def test_a_recipe_prepare_stage_with_a_relative_root(voxceleb_tree, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.chdir(voxceleb_tree.parent)
    recipe_path = Path("rel.yaml")
    recipe_path.write_text("name: rel\noutput: runs/rel\nscore: {reference: superb-2024}\n"
                           f"corpora:\n  vox: {{plugin: voxceleb1, root: {voxceleb_tree.name}}}\n"
                           "upstreams:\n  fbank: {plugin: fbank}\n"
                           "downstreams:\n  sid: {plugin: sid, corpus: vox}\n")
    plugins = default_manager()
    recipe = load_recipe(recipe_path, plugins)
    assert recipe.missing_inputs() == {}
    plan = build_plan(recipe, plugins)
    (stage,) = [s for s in plan.stages.values() if s.kind == "prepare"]
    outcome = execute_stage(stage, recipe.output, plugins=plugins)
    assert outcome.status == "done", outcome.error
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert _readable_from_elsewhere(voxceleb_tree.parent / "runs/rel" / stage.key, elsewhere, monkeypatch) == 8


def test_plan_names_a_relative_root_that_does_not_exist(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("rel.yaml").write_text("name: rel\nscore: {reference: superb-2024}\n"
                                "corpora:\n  vox: {plugin: voxceleb1, root: data/VoxCeleb1}\n"
                                "upstreams:\n  fbank: {plugin: fbank}\n"
                                "downstreams:\n  sid: {plugin: sid, corpus: vox}\n")
    assert main(["plan", "rel.yaml", "--json"]) == 0
    inputs = json.loads(capsys.readouterr().out)["inputs"]
    assert inputs == {"corpora.vox.root": {"path": "data/VoxCeleb1", "exists": False}}
    assert main(["plan", "rel.yaml"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"1 input path(s) missing (relative paths are read from the working directory {tmp_path})" in out
