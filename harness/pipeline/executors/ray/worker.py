"""What runs on the Ray workers: the start check of a node and the body of a stage's task."""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError, PluginError
from harness.core.params import input_paths
from harness.core.plan import Stage
from harness.core.registry import PluginManager
from harness.core.stage_kinds import PLUGIN_KINDS
from harness.models.model_io import model_device
from harness.pipeline.execute import Outcome, execute_stage
from harness.pipeline.executors.ray.shared import marker_seen, not_visible

log = logging.getLogger("harness.pipeline.executors.ray")

PluginsFactory = Callable[[], PluginManager]
PROGRESS_EVERY_S = 0.5

_MANAGERS: dict[PluginsFactory, PluginManager] = {}


def worker_plugins(plugins_factory: PluginsFactory) -> PluginManager:
    """The plugin manager of this worker process, built once per factory (Ray reuses worker processes)."""
    if plugins_factory not in _MANAGERS:
        _MANAGERS[plugins_factory] = plugins_factory()
    return _MANAGERS[plugins_factory]


def probe_node(marker: str, token: str, plugins_factory: PluginsFactory, stages: list[Stage],
               hide_gpus: bool = False) -> dict[str, Any]:
    """Runs on one node at start: does it see the marker and the stages' input paths, which versions of the
    stages' plugins does it have. ``hide_gpus`` as in :func:`run_stage_task` (Ray may reuse this worker)."""
    if hide_gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    report: dict[str, Any] = {"host": socket.gethostname(), "seen": marker_seen(marker, token), "versions": {},
                              "missing": {}, "error": None}
    if not report["seen"]:
        return report
    try:
        manager = worker_plugins(plugins_factory)
    except Exception as exc:  # reported to the driver as one line
        report["error"] = f"{type(exc).__name__}: {exc}"
        return report
    for kind, name in sorted({(PLUGIN_KINDS[s.kind], s.plugin) for s in stages if s.kind in PLUGIN_KINDS}):
        try:
            info = manager.get(kind, name)
            report["versions"][f"{kind}:{name}"] = f"{info.version}@{info.origin}"
        except PluginError:
            report["versions"][f"{kind}:{name}"] = None
    report["missing"] = {p: what for p, what in stage_input_paths(stages, manager).items() if not Path(p).exists()}
    return report


def stage_input_paths(stages: list[Stage], plugins: PluginManager) -> dict[str, str]:
    """The user's paths (corpus roots, checkpoints) the stages read, each with the parameter that names it.

    A stage whose plugin is missing or different here is skipped: the version check reports it.
    """
    out: dict[str, str] = {}
    for stage in stages:
        if stage.kind not in PLUGIN_KINDS:
            continue
        try:
            cls = plugins.get(PLUGIN_KINDS[stage.kind], stage.plugin).cls
            fields = cls.Params.model_fields
            params = cls.Params.model_validate({k: v for k, v in stage.run_params.items() if k in fields})
        except Exception as exc:
            log.debug("no input paths for %s: %s", stage.key, exc)
            continue
        for name, path in input_paths(params).items():
            out.setdefault(str(path), f"{stage.kind} {stage.plugin} {name}")
    return out


def post(events: Any, event: tuple) -> None:
    """Send a start, progress or cache-filled event to the driver; a lost queue never fails a stage (the
    driver then lets a stage's feature cache go to the next one when the stage ends)."""
    try:
        events.put_nowait(event)
    except Exception as exc:
        log.debug("progress event dropped: %s", exc)


class _Reporter:
    """A stage's on_progress inside the worker: posts to the driver's queue at most every PROGRESS_EVERY_S."""

    def __init__(self, events: Any, key: str):
        self.events = events
        self.key = key
        self.last = 0.0

    def __call__(self, step: int, total: int, info: dict[str, Any]) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY_S and not (total and step >= total):
            return
        self.last = now
        post(self.events, ("progress", self.key, step, total, dict(info)))


def run_stage_task(stage: Stage, output: str, marker: str, token: str, plugins_factory: PluginsFactory,
                   events: Any, hide_gpus: bool = False, device: str = "auto") -> Outcome:
    """The body of a stage's Ray task: check the shared folder, then the same execute_stage as locally.

    ``hide_gpus``: the stage declared no GPU, so it runs on the CPU (recent Ray leaves every GPU visible
    to such a task, and the stage would otherwise use one that Ray never gave it). ``device``: the
    ``--device`` value, resolved here by :func:`~harness.models.model_io.model_device` as the local executor does.
    """
    if hide_gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    host = socket.gethostname()
    if not marker_seen(marker, token):
        now = time.time()
        return Outcome(stage.key, "failed", now, now, host, error=not_visible(output, [host]), user_error=True)
    post(events, ("start", stage.key, host, os.getpid()))
    try:
        plugins = worker_plugins(plugins_factory)
    except Exception as exc:
        now = time.time()
        detail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-8))
        return Outcome(stage.key, "failed", now, now, host, user_error=isinstance(exc, HarnessError),
                       error=f"the plugins could not be loaded on {host} ({type(exc).__name__}: {exc})\n{detail}")
    try:
        resolved = model_device("cpu" if hide_gpus else device)
    except HarnessError as exc:
        now = time.time()
        return Outcome(stage.key, "failed", now, now, host, error=str(exc), user_error=True)
    return execute_stage(stage, output, _Reporter(events, stage.key), plugins, device=resolved,
                         on_cache_filled=lambda: post(events, ("filled", stage.key)))
