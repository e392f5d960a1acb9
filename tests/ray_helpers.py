"""What Ray workers import in the Ray executor tests: a plugin manager with only the toy plugins."""

from __future__ import annotations

from harness.core.registry import PluginManager
from tests import toy_plugins


def toy_only_manager() -> PluginManager:
    """The toy plugins under the same origin as tests.core_helpers.toy_manager, without entry points
    (so a fresh worker process does not import every installed plugin)."""
    return PluginManager(modules=[(toy_plugins, "toy-tests", "0.0")], entry_points=False)


def no_plugins_manager() -> PluginManager:
    """A worker environment where none of the planned plugins is installed."""
    return PluginManager(entry_points=False)
