"""Hostile and broken recipes and output folders: one sentence, exit code 2, within a second, nothing lost."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from harness.cli import main
from harness.core.recipe import load_recipe
from tests.core_helpers import TOY_RECIPE, toy_manager, write_recipe


def _bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels + 1):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "\n".join(lines) + "\nname: x\n"


def _write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "recipe.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


BAD_RECIPES = {
    # name: (content, key words of the one sentence)
    "billion-laughs": (_bomb(), ["expands to more than", "aliases"]),
    "too-many-aliases": ("x: &x 1\nl: [" + ", ".join(["*x"] * 1500) + "]\n", ["more than 1000 YAML aliases"]),
    "too-deep": ("a: " + "[" * 200 + "]" * 200 + "\n", ["nested more than 64 levels"]),
    "too-big": ("# " + "x" * 300_000 + "\n", ["recipe.yaml is 300 KB, more than a recipe's limit of 256 KB"]),
    "not-utf8": (b"name: caf\xe9\nupstreams: {}\n", ["recipe.yaml line 1: not UTF-8 text (byte 9)",
                                                     "save the recipe as UTF-8"]),
    "recursive-alias": ("a: &a [1, *a]\n", None),  # YAML itself refuses it or we do: either way one sentence
}


@pytest.mark.parametrize("case", sorted(BAD_RECIPES))
def test_a_hostile_recipe_is_refused_in_one_sentence_within_a_second(case, tmp_path, toy_cli, capsys):
    content, words = BAD_RECIPES[case]
    path = _write(tmp_path, content)
    start = time.perf_counter()
    code = main(["plan", str(path)])
    took = time.perf_counter() - start
    err = capsys.readouterr().err
    assert code == 2
    assert took < 1.0, f"{case} took {took:.2f} s"
    assert "Traceback" not in err and err.startswith("error: recipe.yaml")
    for word in words or []:
        assert word in err


def test_duplicate_keys_are_refused_naming_both_lines(tmp_path, toy_cli, capsys):
    text = TOY_RECIPE.replace("  ev: {{plugin: toy_eval, corpus: nums}}\n",
                              "  ev: {{plugin: toy_eval, corpus: nums}}\n  ev: {{plugin: toy_eval, corpus: nums}}\n")
    path = write_recipe(tmp_path, text)
    assert main(["plan", str(path)]) == 2
    err = capsys.readouterr().err
    assert "recipe.yaml lines 15 and 16: key 'ev' is given twice in the same mapping; keep one of them." in err


def test_a_yaml_merge_key_is_not_a_duplicate(tmp_path):
    text = TOY_RECIPE.replace("  ev: {{plugin: toy_eval, corpus: nums}}\n",
                              "  ev: &ev {{plugin: toy_eval, corpus: nums}}\n  ev2: {{<<: *ev, scale: 2.0}}\n")
    recipe = load_recipe(write_recipe(tmp_path, text), toy_manager())
    assert recipe.entries["downstreams"]["ev2"].variants[0].params.scale == 2.0


@pytest.mark.parametrize("value", ['"false"', "no_thanks", "0"])
def test_baseline_must_be_a_boolean(value, tmp_path, toy_cli, capsys):
    path = write_recipe(tmp_path, TOY_RECIPE.replace("seeds: [0]\n", f"seeds: [0]\nbaseline: {value}\n"))
    assert main(["plan", str(path)]) == 2
    err = capsys.readouterr().err
    assert "recipe.yaml line 4: baseline: expected true or false" in err and "without quotes" in err


def test_baseline_false_is_read_as_false(tmp_path):
    path = write_recipe(tmp_path, TOY_RECIPE.replace("seeds: [0]\n", "seeds: [0]\nbaseline: false\n"))
    assert load_recipe(path, toy_manager()).baseline is False


@pytest.mark.parametrize("case", ["a-file", "under-a-file"])
def test_an_output_folder_that_cannot_be_a_folder_is_refused(case, tmp_path, toy_cli, capsys):
    blocker = tmp_path / "taken"
    blocker.write_text("mine")
    out = blocker if case == "a-file" else blocker / "out"
    path = write_recipe(tmp_path, output=str(out))
    assert main(["run", str(path), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    expected = "is a file, not a folder; choose another --output." if case == "a-file" else \
        "not a directory); choose a writable --output."
    assert expected in err and "Traceback" not in err
    assert blocker.read_text() == "mine"


@pytest.mark.skipif(__import__("os").geteuid() == 0, reason="root writes through permission bits")
def test_a_read_only_output_folder_is_refused(tmp_path, toy_cli, capsys):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        assert main(["run", str(write_recipe(tmp_path, output=str(out))), "--device", "cpu"]) == 2
    finally:
        out.chmod(0o755)
    assert "permission denied); choose a writable --output." in capsys.readouterr().err
