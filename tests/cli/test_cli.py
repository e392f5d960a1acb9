"""The `harness` command itself: help for every sub-command, one-line errors, fast start for light commands."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.cli import COMMANDS


def harness(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True)


def test_top_level_help_lists_every_command():
    proc = harness("--help")
    assert proc.returncode == 0, proc.stderr
    for name in COMMANDS:
        assert f"    {name} " in proc.stdout


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_has_help(name):
    proc = harness(name, "--help")
    assert proc.returncode == 0, proc.stderr
    assert f"usage: harness {name}" in proc.stdout


def test_light_commands_do_not_import_torch():
    code = ("import sys; from harness.cli import main; main(['results', '/nonexistent-x']); "
            "print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip().endswith("False")
    assert "holds no results store" in proc.stderr


def test_a_missing_relative_input_path_names_the_folder_it_was_read_from(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("name: r\noutput: out\ncorpora:\n  speech: {plugin: synthetic}\n"
                      "upstreams:\n  m: {plugin: decoar2, checkpoint: checkpoints/missing}\n"
                      "downstreams:\n  sid: {plugin: sid, corpus: speech}\n")
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(recipe)], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "1 input path(s) of recipe.yaml do not exist (upstreams.m.checkpoint -> checkpoints/missing) " \
           f"(relative paths are read from the working directory {tmp_path})" in " ".join(proc.stderr.split())
    assert not (tmp_path / "out").exists()
