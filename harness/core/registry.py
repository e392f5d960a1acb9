"""The plugin manager: built-ins and third-party packages found the same way.

Every module declared under the entry-point group ``harness`` (the built-ins in this project's
``setup.cfg``, others in their own package metadata) is registered with pluggy; each kind's hook is
then called once per implementation with a :class:`Registry` that records which package the plugin
came from.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import logging
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType

import pluggy

from harness.core import hookspecs
from harness.core.errors import PluginError
from harness.core.plugin import Plugin
from harness.core.suggest import suggest

log = logging.getLogger("harness.core.registry")

KINDS = tuple(hookspecs.KIND_HOOKS)


@dataclass(frozen=True)
class PluginInfo:
    kind: str
    name: str
    cls: type[Plugin]
    origin: str
    origin_version: str
    module: str

    @property
    def summary(self) -> str:
        return self.cls.summary

    @property
    def version(self) -> str:
        return self.cls.version


@dataclass(frozen=True)
class LoadFailure:
    entry_point: str
    origin: str
    error: str


class KindRegistry:
    """The :class:`harness.core.plugin.PluginRegistry` handed to a plugin's hook: ``add`` records a
    plugin class of the hook's kind and the package it came from."""

    def __init__(self, kind: str, manager: PluginManager, origin: str, origin_version: str, module: str):
        self.kind = kind
        self._manager = manager
        self._origin = origin
        self._origin_version = origin_version
        self._module = module

    def add(self, cls: type[Plugin]) -> None:
        if getattr(cls, "kind", None) != self.kind:
            raise PluginError(
                f"{self._origin} registered {cls.__name__} as a {self.kind} plugin, but it is a "
                f"{getattr(cls, 'kind', 'non-')} plugin; subclass the right interface in harness.core.interfaces."
            )
        info = PluginInfo(self.kind, cls.name, cls, self._origin, self._origin_version, self._module)
        self._manager._add(info)


class PluginManager:
    """All plugins by kind and name."""

    def __init__(self, modules: list[tuple[ModuleType, str, str]] | None = None, entry_points: bool = True):
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._plugins: dict[str, dict[str, PluginInfo]] = {k: {} for k in KINDS}
        self.failures: list[LoadFailure] = []
        self._origins: dict[str, tuple[str, str]] = {}
        self._built_from = ([(m.__name__, origin, version) for m, origin, version in modules or []], entry_points)
        if entry_points:
            self._load_entry_points()
        for module, origin, version in modules or []:
            self._register_module(module, origin, version)
        self._collect()

    def __reduce__(self) -> tuple:
        """Pickled as how it was built: another process (a stage run in parallel) imports the same modules."""
        return (_rebuild_manager, self._built_from)

    # ------------------------------------------------------------------ loading

    def _load_entry_points(self) -> None:
        seen: set[tuple[str, str]] = set()
        for ep in md.entry_points(group=hookspecs.PROJECT):
            dist = getattr(ep, "dist", None)
            origin = dist.name if dist is not None else "unknown"
            version = dist.version if dist is not None else ""
            if (origin, ep.value) in seen:
                continue
            seen.add((origin, ep.value))
            try:
                module = ep.load()
            except Exception as exc:  # a broken plugin must not take the others down
                msg = f"{type(exc).__name__}: {exc}"
                self.failures.append(LoadFailure(ep.name, origin, msg))
                log.warning("plugin %r from %s failed to import (%s); the others still load.", ep.name, origin, msg)
                continue
            self._register_module(module, origin, version)

    def _register_module(self, module: ModuleType, origin: str, version: str) -> None:
        if self._pm.is_registered(module):
            return
        self._pm.register(module, name=module.__name__)
        self._origins[module.__name__] = (origin, version)

    def _collect(self) -> None:
        for kind, hook_name in hookspecs.KIND_HOOKS.items():
            hook = getattr(self._pm.hook, hook_name)
            for impl in hook.get_hookimpls():
                origin, version = self._origins.get(impl.plugin_name, ("unknown", ""))
                registry = KindRegistry(kind, self, origin, version, impl.plugin_name)
                try:
                    impl.function(registry=registry)
                except PluginError:
                    raise
                except Exception as exc:
                    self.failures.append(LoadFailure(impl.plugin_name, origin, f"{type(exc).__name__}: {exc}"))
                    log.warning("plugin module %s failed to register (%s).", impl.plugin_name, exc)

    def _add(self, info: PluginInfo) -> None:
        existing = self._plugins[info.kind].get(info.name)
        if existing is not None and existing.cls is not info.cls:
            raise PluginError(
                f"two {info.kind} plugins are named {info.name!r}: one from {existing.origin} "
                f"({existing.module}) and one from {info.origin} ({info.module}); uninstall or rename one."
            )
        self._plugins[info.kind][info.name] = info

    # ------------------------------------------------------------------ access

    def names(self, kind: str) -> list[str]:
        return sorted(self._plugins[kind])

    def all(self) -> list[PluginInfo]:
        return [self._plugins[k][n] for k in KINDS for n in sorted(self._plugins[k])]

    def get(self, kind: str, name: str) -> PluginInfo:
        try:
            return self._plugins[kind][name]
        except KeyError:
            hint = suggest(name, self.names(kind))
            raise PluginError(f"there is no {kind} plugin named {name!r}{hint}"
                              + ("" if hint.endswith("?") else ".")) from None

    def create(self, kind: str, name: str) -> Plugin:
        return self.get(kind, name).cls()

    def task_kind(self, name: str) -> str | None:
        """The kind of plugin a fine-tuning ``task:`` name resolves to: a task plugin (looked up first),
        else a downstream, whose task it trains; None when neither has the name."""
        return next((kind for kind in ("task", "downstream") if name in self._plugins[kind]), None)

    def task_names(self) -> list[str]:
        """Every name a fine-tuning ``task:`` may take (task and downstream plugins)."""
        return sorted(set(self._plugins["task"]) | set(self._plugins["downstream"]))


def _rebuild_manager(modules: list[tuple[str, str, str]], entry_points: bool) -> PluginManager:
    return PluginManager([(importlib.import_module(name), o, v) for name, o, v in modules], entry_points)


@lru_cache(maxsize=1)
def default_manager() -> PluginManager:
    """The process-wide manager over installed entry points."""
    return PluginManager()
