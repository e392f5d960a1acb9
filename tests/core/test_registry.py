"""Plugin discovery: entry points, origins, name clashes, broken plugins, the CLI listing."""

from __future__ import annotations

import importlib.metadata as md
import json
import subprocess
import sys
import types

import pytest

from harness import hookimpl
from harness.core.errors import PluginError
from harness.core.interfaces import MergePlugin
from harness.core.registry import PluginManager
from tests import toy_plugins
from tests.core_helpers import toy_manager


def test_modules_register_with_their_origin():
    manager = toy_manager()
    info = manager.get("merge", "toy_merge")
    assert info.origin == "toy-tests"
    assert info.kind == "merge"
    assert "toy_up" in manager.names("upstream")
    assert "toy_corpus" in manager.names("corpus")


def test_entry_point_plugins_are_found_with_their_package():
    manager = PluginManager()
    info = manager.get("merge", "task_arithmetic")
    assert info.origin == "harness-plugin-example"
    assert info.origin_version == "0.2.0"
    assert info.module == "harness_plugin_example.task_arithmetic"


def _clash_module(name: str) -> types.ModuleType:
    module = types.ModuleType(name)

    class Other(MergePlugin):
        def merge_tensor(self, name, base, finetuned, params, state):
            return base

    Other.name = "toy_merge"

    @hookimpl
    def harness_register_merge(registry):
        registry.add(Other)

    module.harness_register_merge = harness_register_merge
    return module


def test_two_plugins_with_one_name_is_an_error_naming_both_packages():
    with pytest.raises(PluginError) as err:
        PluginManager(modules=[(toy_plugins, "toy-tests", "0.0"), (_clash_module("clash"), "clash-pkg", "1.0")],
                      entry_points=False)
    message = str(err.value)
    assert "two merge plugins are named 'toy_merge'" in message
    assert "toy-tests" in message and "clash-pkg" in message


def test_a_plugin_that_fails_to_import_is_reported_and_the_others_load(monkeypatch):
    real = md.entry_points

    class Broken:
        name = "broken_thing"
        value = "no_such_module_xyz"
        group = "harness"
        dist = types.SimpleNamespace(name="broken-pkg", version="9.9")

        def load(self):
            raise ImportError("No module named 'no_such_module_xyz'")

    def fake(group=None, **kw):
        eps = list(real(group=group, **kw)) if group else []
        return eps + [Broken()] if group == "harness" else real(group=group, **kw)

    monkeypatch.setattr(md, "entry_points", fake)
    manager = PluginManager()
    assert [f.entry_point for f in manager.failures if f.origin == "broken-pkg"] == ["broken_thing"]
    assert "no_such_module_xyz" in manager.failures[-1].error
    assert "task_arithmetic" in manager.names("merge")


def test_unknown_plugin_suggests_the_closest_name():
    with pytest.raises(PluginError, match=r"no merge plugin named 'toy_merg'; did you mean 'toy_merge'\?"):
        toy_manager().get("merge", "toy_merg")


def test_cli_lists_plugins_as_json_with_origins():
    out = subprocess.run([sys.executable, "-m", "harness.cli", "plugins", "--json"], capture_output=True,
                         text=True, check=True).stdout
    rows = json.loads(out)
    assert {"kind": "merge", "name": "task_arithmetic", "origin": "harness-plugin-example"}.items() <= next(
        r for r in rows if r["name"] == "task_arithmetic").items()
    assert all({"kind", "name", "origin"} <= set(r) for r in rows)
    kinds = {r["kind"] for r in rows}
    assert kinds <= {"upstream", "corpus", "finetune", "merge", "downstream", "task"}
    assert {"kind": "task", "name": "pc", "origin": "speech-ft-harness"}.items() <= next(
        r for r in rows if r["kind"] == "task" and r["name"] == "pc").items()


def test_cli_table_shows_the_example_package():
    out = subprocess.run([sys.executable, "-m", "harness.cli", "plugins"], capture_output=True, text=True,
                         check=True, env={**__import__("os").environ, "COLUMNS": "200"}).stdout
    line = next(line for line in out.splitlines() if "task_arithmetic" in line)
    assert "harness-plugin-example 0.2.0" in line
