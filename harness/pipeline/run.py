"""The driver: runs a plan with an executor, shows progress, and alone writes the results store."""

from __future__ import annotations

import platform
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from harness.core.errors import HarnessError
from harness.core.outdir import OutputLock, disk_full_message, is_disk_full, make_output_dir
from harness.core.plan import Plan, Stage
from harness.core.provenance import record_run
from harness.core.store import MetricRow, StageRow, Store, cell_identity
from harness.pipeline.execute import Outcome, artifact_dir, read_outcome
from harness.pipeline.executors.base import Executor
from harness.pipeline.progress import HEARTBEAT_S, StageProgress

VERSIONED = ("speech-ft-harness", "torch", "transformers", "numpy", "pydantic", "pluggy")


@dataclass
class RunSummary:
    ran: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    stopped: dict[str, str] = field(default_factory=dict)
    blocked: list[str] = field(default_factory=list)
    user_errors: set[str] = field(default_factory=set)  # failed keys whose error the user can fix
    intervals: list[tuple[float, float]] = field(default_factory=list)  # (started, ended) of each stage run

    @property
    def stage_seconds(self) -> float:
        """The summed duration of the stages this run ran (done or failed)."""
        return sum(end - start for start, end in self.intervals)

    @property
    def only_user_errors(self) -> bool:
        """Every failure is the user's to fix (a missing file, a corrupt wav): the CLI exits 2, not 1."""
        return bool(self.failed) and set(self.failed) <= self.user_errors

    @property
    def ok(self) -> bool:
        return not (self.failed or self.stopped or self.blocked)


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_commit(path: Path) -> str | None:
    try:
        result = subprocess.run(["git", "-C", str(Path(path).resolve().parent), "rev-parse", "HEAD"],
                                capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def finished_keys(plan: Plan, output: Path, store: Store) -> set[str]:
    """Stages whose artifact folder is complete; adopts any the store has not heard of yet."""
    done = set()
    known = store.done_keys()
    for stage in plan.stages.values():
        outcome = read_outcome(output, stage.key)
        if outcome is None or outcome.status != "done":
            continue
        done.add(stage.key)
        if stage.key not in known:
            _record(store, stage, outcome, versions={}, commit=None)
    return done


def clean_partial(output: Path, keys: Iterable[str]) -> None:
    """Remove the ``<key>.tmp`` folders a killed run left for the stages in ``keys``; any other ``*.tmp``
    (a user's own folder) is left alone, and mid-stage checkpoints in .work are kept."""
    for key in keys:
        tmp = Path(output) / f"{key}.tmp"
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)


def _record(store: Store, stage: Stage, outcome: Outcome, versions: dict, commit: str | None) -> None:
    store.record_stage(StageRow(
        key=stage.key, kind=stage.kind, plugin=stage.plugin, name=stage.title, params=stage.params,
        inputs=stage.inputs, labels=stage.labels, status=outcome.status, started=outcome.started,
        ended=outcome.ended, duration=outcome.duration, host=outcome.host, git_commit=commit,
        versions={**versions, "plugin": stage.version}, error=outcome.error, messages=outcome.messages,
    ))
    if outcome.status == "done":
        store.record_metrics(stage.key, [MetricRow(stage=stage.key, **m) for m in outcome.metrics])


def run_plan(plan: Plan, output: Path, executor: Executor, keep_going: bool = False,
             console: Console | None = None, heartbeat_s: float = HEARTBEAT_S) -> RunSummary:
    """Run the stages of ``plan`` not finished yet; bars on a terminal ``console``, a heartbeat line per
    running stage every ``heartbeat_s`` seconds otherwise (see :mod:`harness.pipeline.progress`)."""
    console = console or Console(stderr=True)
    output = make_output_dir(Path(output))
    with OutputLock(output):
        try:
            return _run_locked(plan, output, executor, keep_going, console, heartbeat_s)
        except (OSError, sqlite3.OperationalError) as exc:
            if is_disk_full(exc):
                raise HarnessError(disk_full_message(output)) from None
            raise


def _run_locked(plan: Plan, output: Path, executor: Executor, keep_going: bool, console: Console,
                heartbeat_s: float) -> RunSummary:
    clean_partial(output, plan.stages)
    summary = RunSummary()
    versions = package_versions()
    commit = git_commit(plan.recipe.path)
    with Store(output) as store:
        # which stage of each cell this run stands for, cached or not (the current one where the recipe changed)
        store.record_plan(((cell_identity(s.kind, s.labels), s.key) for s in plan.stages.values()), time.time())
        done = finished_keys(plan, output, store)
        todo = [s for s in plan.ordered() if s.key not in done]
        summary.cached = sorted(done)
        running: dict[str, Stage] = {}
        with StageProgress(console, len(todo), heartbeat_s) as progress:

            started: list[str] = []

            def on_start(stage: Stage) -> None:
                if not started:  # provenance of a run that starts work, not of one refused before any stage
                    record_run(plan, output, versions, commit)
                started.append(stage.key)
                running[stage.key] = stage
                store.record_stage(StageRow(
                    key=stage.key, kind=stage.kind, plugin=stage.plugin, name=stage.title, params=stage.params,
                    inputs=stage.inputs, labels=stage.labels, status="running", started=time.time(), ended=None,
                    duration=None, host=None, git_commit=commit, versions=versions, error=None, messages=[]))
                progress.start(stage.key, stage.title)

            def on_finish(stage: Stage, outcome: Outcome) -> bool:
                running.pop(stage.key, None)
                summary.intervals.append((outcome.started, outcome.ended))
                _record(store, stage, outcome, versions, commit)
                progress.finish(stage.key)
                if outcome.status == "done":
                    summary.ran.append(stage.key)
                    took = f"{outcome.duration:.1f} s on {outcome.host}"
                    progress.print(f"[green]done[/] {escape(stage.title)} [dim]{took}[/]")
                    return True
                first_line = (outcome.error or "").splitlines()[0] if outcome.error else "unknown error"
                if outcome.status == "stopped":
                    summary.stopped[stage.key] = first_line
                else:
                    summary.failed[stage.key] = first_line
                    if outcome.user_error:
                        summary.user_errors.add(stage.key)
                progress.print(f"[red]failed:[/] {escape(stage.title)}: {escape(first_line)}")
                return keep_going and outcome.status != "stopped"

            def on_progress(stage: Stage, step: int, total: int, info: dict) -> None:
                progress.update(stage.key, step, total, info)

            try:
                executor.execute(todo, done, output, on_start, on_finish, on_progress)
            except KeyboardInterrupt:
                for stage in running.values():
                    now = time.time()
                    _record(store, stage, Outcome(stage.key, "interrupted", now, now, "", error="interrupted"),
                            versions, commit)
                raise
        finished = done | set(summary.ran) | set(summary.failed) | set(summary.stopped)
        summary.blocked = [s.key for s in todo if s.key not in finished]
    return summary


def describe(plan: Plan, output: Path) -> dict[str, dict[str, int]]:
    """Per stage kind: how many stages, how many are cached, how many will run."""
    out: dict[str, dict[str, int]] = {}
    for stage in plan.stages.values():
        row = out.setdefault(stage.kind, {"stages": 0, "cached": 0, "to_run": 0})
        row["stages"] += 1
        if (artifact_dir(output, stage.key) / "outcome.json").is_file():
            row["cached"] += 1
        else:
            row["to_run"] += 1
    return out
