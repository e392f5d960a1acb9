"""The executor interface: how ready stages get run. Stages are the same functions everywhere."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

from harness.core.plan import Stage
from harness.pipeline.execute import Outcome

#: called by the executor on the driver: stage started / progress inside a stage
StartFn = Callable[[Stage], None]
ProgressFn = Callable[[Stage, int, int, dict], None]


class Executor(ABC):
    """Runs stages whose inputs are done, reporting back to the driver, which alone writes the store.

    ``stages`` are the stages still to run, in dependency order; ``done`` are keys already finished.
    ``on_finish`` returns False to ask the executor to stop submitting new work (a failure without
    ``--keep-going``). Stages whose inputs failed are never started.
    """

    name = "base"

    @abstractmethod
    def execute(self, stages: list[Stage], done: set[str], output: Path, on_start: StartFn,
                on_finish: Callable[[Stage, Outcome], bool], on_progress: ProgressFn) -> None: ...
