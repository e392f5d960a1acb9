"""The default executor: one stage at a time in this process, in dependency order."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from harness.core.plan import Stage
from harness.core.registry import PluginManager
from harness.models.model_io import model_device
from harness.pipeline.execute import Outcome, execute_stage
from harness.pipeline.executors.base import Executor, ProgressFn, StartFn


class LocalExecutor(Executor):
    """Runs each stage here; accelerator stages on ``device`` (a ``--device`` value, resolved at once)."""

    name = "local"

    def __init__(self, plugins: PluginManager | None = None, device: str | torch.device = "auto"):
        self.plugins = plugins
        self.device = model_device(device)

    def execute(self, stages: list[Stage], done: set[str], output: Path, on_start: StartFn,
                on_finish: Callable[[Stage, Outcome], bool], on_progress: ProgressFn) -> None:
        finished = set(done)
        for stage in stages:
            if not set(stage.inputs.values()) <= finished:
                continue  # an input failed or was skipped: the driver reports it as blocked
            on_start(stage)
            outcome = execute_stage(stage, output, lambda s, t, info, st=stage: on_progress(st, s, t, info),
                                    self.plugins, device=self.device)
            keep_going = on_finish(stage, outcome)
            if outcome.status == "done":
                finished.add(stage.key)
            if not keep_going:
                return
