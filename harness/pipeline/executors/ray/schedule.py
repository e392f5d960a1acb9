"""One run on Ray: submit the stages whose inputs are done, forward their events, collect their
outcomes, and submit again a stage whose worker died. Evaluate stages of one model on one corpus are
submitted in their turn to fill its feature cache (:mod:`harness.pipeline.executors.cache_turns`): once
those before them say they filled it, so each computes its features once and as a sequential run does."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness.core.errors import HarnessError
from harness.core.plan import Stage
from harness.pipeline.execute import Outcome
from harness.pipeline.executors.base import ProgressFn, StartFn
from harness.pipeline.executors.cache_turns import CacheTurns
from harness.pipeline.executors.ray.worker import PluginsFactory, run_stage_task

log = logging.getLogger("harness.pipeline.executors.ray")

POLL_S = 0.2


class Runner(Protocol):
    """What a schedule takes from its executor (:class:`harness.pipeline.executors.ray.RayExecutor`)."""

    ray: Any
    plugins_factory: PluginsFactory
    max_retries: int
    device: str


@dataclass
class _Task:
    stage: Stage
    attempt: int
    submitted: float
    deaths: list[str] = field(default_factory=list)


class Schedule:
    """One execute() call: submits stages whose inputs are done, collects outcomes, retries dead workers."""

    def __init__(self, executor: Runner, stages: list[Stage], done: set[str], output: Path,
                 options: dict[str, dict[str, Any]], marker: str, token: str):
        from ray.util.queue import Queue

        self.ex = executor
        self.ray = executor.ray
        self.pending = list(stages)
        self.by_key = {s.key: s for s in stages}
        self.finished = set(done)
        self.turns = CacheTurns(stages, done)
        self.output = str(output)
        self.options = options
        self.marker = marker
        self.token = token
        self.inflight: dict[Any, _Task] = {}
        self.announced: set[str] = set()  # on_start called
        self.closed: set[str] = set()  # on_finish called
        self.hosts: dict[str, str] = {}
        self.remote = self.ray.remote(run_stage_task)
        # a GPU stage's worker exits after it, so the next GPU stage never finds CUDA set up for another device
        # (Ray applies max_calls only where the function is declared, not in .options())
        self.remote_gpu = self.ray.remote(max_calls=1)(run_stage_task)
        self.events = Queue(actor_options={"num_cpus": 0})  # the workers' start and progress events
        self.events_ok = True

    def submit(self, stage: Stage, attempt: int = 1, deaths: list[str] | None = None,
               submitted: float | None = None) -> None:
        options = self.options[stage.key]
        remote = self.remote_gpu if options["num_gpus"] > 0 else self.remote
        ref = remote.options(**options, max_retries=0, retry_exceptions=False,
                             name=f"{stage.kind} {stage.key[:10]}").remote(
            stage, self.output, self.marker, self.token, self.ex.plugins_factory, self.events, options["num_gpus"] == 0,
            self.ex.device)
        self.inflight[ref] = _Task(stage, attempt, submitted or time.time(), list(deaths or []))

    def run(self, on_start: StartFn, on_finish: Callable[[Stage, Outcome], bool], on_progress: ProgressFn) -> None:
        ray = self.ray
        submitting = True
        try:
            while True:
                if submitting:
                    for stage in [s for s in self.pending
                                  if set(s.inputs.values()) <= self.finished and self.turns.ready(s)]:
                        self.pending.remove(stage)
                        self.submit(stage)
                if not self.inflight:
                    return
                ready, _ = ray.wait(list(self.inflight), num_returns=1, timeout=POLL_S)
                self.drain(on_start, on_progress)
                for ref in ready:
                    task = self.inflight.pop(ref)
                    outcome = self.result(ref, task)
                    if outcome is None:  # submitted again after its worker died
                        continue
                    stage = task.stage
                    self.turns.mark_filled(stage.key)  # ended: the next stage on its cache may go
                    if stage.key not in self.announced:  # it finished before its start event arrived
                        self.announced.add(stage.key)
                        on_start(stage)
                    self.closed.add(stage.key)
                    log.debug("%s: %s on %s in %.1f s", stage.title, outcome.status, outcome.host or "?",
                             outcome.duration)
                    if outcome.status == "done":
                        self.finished.add(stage.key)
                    if not on_finish(stage, outcome):
                        submitting = False  # let the running ones finish; start nothing new
        except BaseException:  # Ctrl-C or a failing callback: nothing keeps running for a driver that left
            for ref in self.inflight:
                try:
                    ray.cancel(ref, force=True)
                except Exception as exc:  # already finished, or its node is gone
                    log.debug("cancel failed: %s", exc)
            raise
        finally:
            try:
                self.events.shutdown(force=True)
            except Exception as exc:
                log.debug("event queue already gone: %s", exc)

    def drain(self, on_start: StartFn, on_progress: ProgressFn) -> None:
        """Forward the workers' start and progress events to the driver, with where each stage runs."""
        if not self.events_ok:
            return
        try:
            size = self.events.size()
            events = self.events.get_nowait_batch(size) if size else []
        except self.ray.exceptions.RayError as exc:  # progress is a nicety; the run goes on without it
            log.warning("stage progress is no longer shown (%s)", str(exc).splitlines()[0])
            self.events_ok = False
            return
        for event in events:
            key = event[1]
            if event[0] == "filled":
                self.turns.mark_filled(key)
                continue
            stage = self.by_key.get(key)
            if stage is None or key in self.closed:
                continue
            if event[0] == "start":
                self.hosts[key] = event[2]
                if key not in self.announced:
                    self.announced.add(key)
                    on_start(stage)
                on_progress(stage, 0, 0, {"on": event[2]})
            else:
                _, _, step, total, info = event
                on_progress(stage, step, total, {"on": self.hosts.get(key, "?"), **info})

    def result(self, ref: Any, task: _Task) -> Outcome | None:
        """The task's Outcome; None when it was submitted again; a failed Outcome when Ray could not run it."""
        errors = self.ray.exceptions
        stage = task.stage
        died = (errors.WorkerCrashedError, errors.NodeDiedError, errors.OutOfMemoryError, errors.ObjectLostError,
                errors.LocalRayletDiedError)
        try:
            outcome: Outcome = self.ray.get(ref)
        except died as exc:
            where = self.hosts.get(stage.key, "an unknown node")
            task.deaths.append(f"attempt {task.attempt} died on {where} ({type(exc).__name__})")
            if task.attempt <= self.ex.max_retries:
                log.warning("%s: the worker died (%s); retry %d of %d resumes from its checkpoint",
                            stage.title, type(exc).__name__, task.attempt, self.ex.max_retries)
                self.submit(stage, task.attempt + 1, task.deaths, task.submitted)
                return None
            return Outcome(stage.key, "failed", task.submitted, time.time(), self.hosts.get(stage.key, ""),
                           messages=task.deaths,
                           error=f"the worker running this stage died {len(task.deaths)} time(s), the last time "
                                 f"with {type(exc).__name__}: {str(exc).splitlines()[0]}; its checkpoint is kept, "
                                 "so a rerun resumes it.")
        except errors.RayError as exc:  # the task could not run at all (its environment, a cancel, ...)
            cause = getattr(exc, "cause", None)
            if isinstance(cause, HarnessError):
                error, user = str(cause), True
            else:
                error, user = f"{type(cause or exc).__name__}: {cause or exc}", False
            return Outcome(stage.key, "failed", task.submitted, time.time(), self.hosts.get(stage.key, ""),
                           messages=task.deaths, error=error, user_error=user)
        if task.deaths:
            outcome.messages = [*task.deaths, *outcome.messages]
        return outcome
