"""The default executor: one stage at a time in this process, in dependency order."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from harness.core.plan import Stage
from harness.core.registry import PluginManager
from harness.pipeline.execute import Outcome, execute_stage
from harness.pipeline.executors.base import Executor, ProgressFn, StartFn


class LocalExecutor(Executor):
    name = "local"

    def __init__(self, plugins: PluginManager | None = None):
        self.plugins = plugins

    def execute(self, stages: list[Stage], done: set[str], output: Path, on_start: StartFn,
                on_finish: Callable[[Stage, Outcome], bool], on_progress: ProgressFn) -> None:
        finished = set(done)
        for stage in stages:
            if not set(stage.inputs.values()) <= finished:
                continue  # an input failed or was skipped: the driver reports it as blocked
            on_start(stage)
            outcome = execute_stage(stage, output, lambda s, t, info, st=stage: on_progress(st, s, t, info),
                                    self.plugins)
            keep_going = on_finish(stage, outcome)
            if outcome.status == "done":
                finished.add(stage.key)
            if not keep_going:
                return
