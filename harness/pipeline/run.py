"""The driver: runs a plan with an executor, shows progress, and alone writes the results store."""

from __future__ import annotations

import platform
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from harness.core.plan import Plan, Stage
from harness.core.store import MetricRow, StageRow, Store
from harness.pipeline.execute import Outcome, artifact_dir, read_outcome
from harness.pipeline.executors.base import Executor

VERSIONED = ("speech-ft-harness", "torch", "transformers", "numpy", "pydantic", "pluggy")


@dataclass
class RunSummary:
    ran: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    stopped: dict[str, str] = field(default_factory=dict)
    blocked: list[str] = field(default_factory=list)

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


def clean_partial(output: Path) -> None:
    """Remove temporary folders left by a killed run (mid-stage checkpoints in .work are kept)."""
    for tmp in Path(output).glob("*.tmp"):
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
             console: Console | None = None) -> RunSummary:
    console = console or Console(stderr=True)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    clean_partial(output)
    summary = RunSummary()
    versions = package_versions()
    commit = git_commit(plan.recipe.path)
    with Store(output) as store:
        done = finished_keys(plan, output, store)
        todo = [s for s in plan.ordered() if s.key not in done]
        summary.cached = sorted(done)
        running: dict[str, Stage] = {}
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TextColumn("eta"), TimeRemainingColumn())
        with Progress(*columns, console=console, transient=False, disable=not todo) as progress:
            overall = progress.add_task("stages", total=len(todo))
            inner = progress.add_task("", total=None, visible=False)

            def on_start(stage: Stage) -> None:
                running[stage.key] = stage
                store.record_stage(StageRow(
                    key=stage.key, kind=stage.kind, plugin=stage.plugin, name=stage.title, params=stage.params,
                    inputs=stage.inputs, labels=stage.labels, status="running", started=time.time(), ended=None,
                    duration=None, host=None, git_commit=commit, versions=versions, error=None, messages=[]))
                progress.update(inner, description=f"  {stage.title}", completed=0, total=None, visible=True)

            def on_finish(stage: Stage, outcome: Outcome) -> bool:
                running.pop(stage.key, None)
                _record(store, stage, outcome, versions, commit)
                progress.advance(overall)
                if outcome.status == "done":
                    summary.ran.append(stage.key)
                    took = f"{outcome.duration:.1f} s on {outcome.host}"
                    progress.console.print(f"[green]done[/] {escape(stage.title)} [dim]{took}[/]", highlight=False)
                    return True
                first_line = (outcome.error or "").splitlines()[0] if outcome.error else "unknown error"
                if outcome.status == "stopped":
                    summary.stopped[stage.key] = first_line
                else:
                    summary.failed[stage.key] = first_line
                progress.console.print(f"[red]failed:[/] {escape(stage.title)}: {escape(first_line)}", highlight=False)
                return keep_going and outcome.status != "stopped"

            def on_progress(stage: Stage, step: int, total: int, info: dict) -> None:
                extra = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items())
                progress.update(inner, description=f"  {stage.title} {extra}".rstrip(), completed=step,
                                total=total or None)

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
