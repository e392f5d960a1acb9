"""`harness plugins NAME` shows a plugin's parameters from its schema; a recipe's validation reports
every problem it finds, one sentence each, with exit code 2."""

from __future__ import annotations

import json
import textwrap
from typing import Literal

import pytest
from pydantic import Field

from harness.cli import main
from harness.core.errors import RecipeError
from harness.core.params import describe_params
from harness.core.plugin import InputPath, PluginParams
from harness.core.recipe import load_recipe
from tests.core_helpers import toy_manager


class Example(PluginParams):
    root: InputPath = Field(description="the corpus folder")
    level: Literal["full", "none"] = "full"
    rate: float | None = Field(None, description="a rate")
    subsets: list[str] = Field(default_factory=lambda: ["a", "b"])
    lambda_: float = Field(1.0, alias="lambda")


def test_describe_params_gives_type_default_and_description():
    assert describe_params(Example) == [
        {"name": "root", "type": "path", "default": "required", "description": "the corpus folder"},
        {"name": "level", "type": "'full' | 'none'", "default": "full", "description": ""},
        {"name": "rate", "type": "float | None", "default": "null", "description": "a rate"},
        {"name": "subsets", "type": "list[str]", "default": "[a, b]", "description": ""},
        {"name": "lambda", "type": "float", "default": "1.0", "description": ""},
    ]


def test_plugins_name_prints_the_parameters(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["plugins", "ties", "--json"]) == 0
    (info,) = json.loads(capsys.readouterr().out)
    assert info["kind"] == "merge" and info["name"] == "ties"
    assert {p["name"]: (p["type"], p["default"]) for p in info["params"]} == {
        "density": ("float", "0.2"), "scope": ("'model' | 'tensor'", "model"), "lambda": ("float", "1.0")}
    assert main(["plugins", "ties"]) == 0
    out = capsys.readouterr().out
    assert "merge ties" in out and "share of each task vector's magnitudes kept" in out
    assert main(["plugins", "tis"]) == 2
    assert capsys.readouterr().err.strip() == ("error: there is no plugin named 'tis' (`harness plugins` lists "
                                               "them); did you mean 'ties'?")


BROKEN = """\
name: toy
output: {out}
seedz: [0]
corpora:
  nums: {{plugin: toy_corpus, n: many}}
upstreams:
  small: {{plugin: toy_up, width: big, widht: 4}}
finetune:
  ft: {{plugin: toy_fft, corpus: nums}}
downstreams:
  ev: {{plugin: toy_eval, corpus: nums}}
"""


def test_every_problem_is_reported(tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text(textwrap.dedent(BROKEN).format(out=tmp_path / "out"))
    with pytest.raises(RecipeError) as err:
        load_recipe(path, toy_manager())
    lines = str(err.value).splitlines()
    assert lines[0] == "5 problems in the recipe; fix them all, then rerun:"
    assert [line.strip() for line in lines[1:]] == [
        "broken.yaml line 3: seedz: unknown key; did you mean 'seeds'?",
        "broken.yaml line 5: corpora.nums.n: input should be a valid integer, unable to parse string as an "
        "integer (got 'many')",
        "broken.yaml line 7: upstreams.small.width: input should be a valid integer, unable to parse string as an "
        "integer (got 'big')",
        "broken.yaml line 7: upstreams.small.widht: unknown key 'widht'; did you mean 'width'?",
        "broken.yaml line 9: finetune.ft.plugin: there is no finetune plugin named 'toy_fft'; did you mean 'toy_ft'?",
    ]


def test_one_problem_reads_as_before(tmp_path):
    path = tmp_path / "one.yaml"
    path.write_text(textwrap.dedent(BROKEN).format(out=tmp_path / "out").replace("seedz", "seeds")
                    .replace("n: many", "n: 3").replace("width: big, widht: 4", "width: 4")
                    .replace("toy_fft", "toy_ft"))
    load_recipe(path, toy_manager())  # the fixed recipe loads
    path.write_text(path.read_text().replace("seeds", "seedz"))
    with pytest.raises(RecipeError, match=r"^one.yaml line 3: seedz: unknown key; did you mean 'seeds'\?$"):
        load_recipe(path, toy_manager())
