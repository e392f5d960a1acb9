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
