"""The default executor: one stage at a time in this process, in dependency order, or with
``jobs`` > 1 independent stages at once in worker processes (:mod:`.overlap`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from harness.core.errors import HarnessError
from harness.core.plan import Stage
from harness.core.registry import PluginManager
from harness.models.model_io import model_device
from harness.pipeline.execute import Outcome, execute_stage
from harness.pipeline.executors.base import Executor, ProgressFn, StartFn
from harness.pipeline.executors.overlap import run_overlapped


class LocalExecutor(Executor):
    """Runs each stage here; accelerator stages on ``device`` (a ``--device`` value, resolved at once)."""

    name = "local"

    def __init__(self, plugins: PluginManager | None = None, device: str | torch.device = "auto", jobs: int = 1,
                 gpu_jobs: int = 1):
        for flag, value in (("--jobs", jobs), ("--gpu-jobs", gpu_jobs)):
            if value < 1:
                raise HarnessError(f"{flag} must be at least 1 (got {value}).")
        if gpu_jobs > jobs:
            raise HarnessError(f"--gpu-jobs {gpu_jobs} is more than --jobs {jobs}, the stages that run at once; "
                               f"raise --jobs to at least {gpu_jobs}.")
        self.plugins = plugins
        self.device = model_device(device)
        self.jobs, self.gpu_jobs = jobs, gpu_jobs

    def execute(self, stages: list[Stage], done: set[str], output: Path, on_start: StartFn,
                on_finish: Callable[[Stage, Outcome], bool], on_progress: ProgressFn) -> None:
        if self.jobs > 1:
            run_overlapped(stages, done, output, on_start, on_finish, on_progress, jobs=self.jobs,
                           plugins=self.plugins, device=self.device, gpu_jobs=self.gpu_jobs)
            return
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
