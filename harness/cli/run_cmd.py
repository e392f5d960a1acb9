"""`harness run RECIPE`: run every stage once (cached, resumable) and store the results."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from harness.cli.common import add_device_argument, add_recipe_arguments, load_plan
from harness.cli.console import err_console
from harness.core.errors import HarnessError
from harness.core.hub import hub_hint
from harness.core.stage_kinds import StageKind
from harness.pipeline.executors.base import Executor
from harness.pipeline.executors.local import LocalExecutor
from harness.pipeline.progress import HEARTBEAT_S
from harness.pipeline.replacements import announcements
from harness.pipeline.run import RunSummary, run_plan
from harness.report.stage_times import StageTimes, busy_seconds

if TYPE_CHECKING:
    from rich.console import Console

    from harness.core.plan import Plan


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("run", help="run a recipe: every stage once, cached and resumable")
    add_recipe_arguments(parser)
    add_device_argument(parser)
    parser.add_argument("--keep-going", action="store_true",
                        help="after a failed stage, still run the stages that do not depend on it")
    parser.add_argument("--executor", choices=["local", "ray"], default="local",
                        help="where stages run (default: this process)")
    parser.add_argument("--address", help="Ray cluster address (with --executor ray; default: start a local one)")
    parser.add_argument("--max-retries", type=int, default=3, metavar="N",
                        help="with --executor ray: times a stage whose worker died is run again (it resumes)")
    parser.add_argument("--num-cpus", type=int,
                        help="with --executor ray and no --address: CPUs of the local Ray instance (default: all)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="with the local executor: run up to N independent stages at once, each in a worker "
                             "process on the threads a sequential run gives it (identical results); "
                             "--gpu-jobs of them at a time on a CUDA GPU (default 1)")
    parser.add_argument("--gpu-jobs", type=int, default=1, metavar="N",
                        help="with --jobs and a CUDA GPU: up to N fine-tuning and evaluation stages share the GPU "
                             "at once, each with its own memory (default 1: a stage holds the GPU; raise it for "
                             "small models)")
    parser.add_argument("--heartbeat", type=float, default=HEARTBEAT_S, metavar="SECONDS",
                        help="when the output is not a terminal (a batch job's log), print each running stage's "
                             f"step, rate and ETA every SECONDS (default {HEARTBEAT_S:g}; 0: never)")
    parser.set_defaults(func=run)


def make_executor(args: argparse.Namespace) -> Executor:
    """The executor ``args`` ask for; a bad ``--device`` (or a GPU that is not there) is a HarnessError."""
    device = getattr(args, "device", "auto")
    if args.executor == "ray":
        for attr, flag in (("jobs", "--jobs"), ("gpu_jobs", "--gpu-jobs")):
            if getattr(args, attr, 1) != 1:
                raise HarnessError(f"{flag} is for the local executor; with --executor ray, stages overlap as "
                                   f"their declared resources allow (drop {flag}).")
        from harness.pipeline.executors.ray import RayExecutor

        return RayExecutor(address=args.address, num_cpus=getattr(args, "num_cpus", None),
                           max_retries=getattr(args, "max_retries", 3), device=device)
    return LocalExecutor(device=device, jobs=getattr(args, "jobs", 1), gpu_jobs=getattr(args, "gpu_jobs", 1))


def run(args: argparse.Namespace) -> int:
    console = err_console  # the console the log records go through: they print above the bars
    executor = make_executor(args)  # a bad --device fails before the recipe is read
    plan = load_plan(args)
    recipe = plan.recipe
    missing = recipe.missing_inputs()
    if missing:
        listing = "; ".join(f"{k} -> {p}" for k, p in sorted(missing.items()))
        relative = any(not p.is_absolute() for p in missing.values())
        where = f" (relative paths are read from the working directory {Path.cwd()})" if relative else ""
        hub = next((hint for p in missing.values() if (hint := hub_hint(p))), None)
        fix = hub if hub else "set the environment variables the recipe uses or fix the paths"
        raise HarnessError(f"{len(missing)} input path(s) of {recipe.path.name} do not exist ({listing}){where}; "
                           f"{fix}.")
    for line in announcements(plan, recipe.output):
        console.print(line)
    summary = run_plan(plan, recipe.output, executor, keep_going=args.keep_going, console=console,
                       heartbeat_s=args.heartbeat)
    console.print(f"{len(summary.ran)} stage(s) ran{_timing(summary)}, {len(summary.cached)} cached, "
                  f"{len(summary.failed)} failed, {len(summary.blocked)} not run; results in {recipe.output}")
    if summary.stopped:
        console.print("stopped cleanly after a checkpoint; rerun the same command to resume.")
    if summary.failed:
        console.print(f"see `harness results {recipe.output} --failed` for the errors.")
    if summary.ok:
        from harness.cli.results_cmd import print_scores

        print_scores(recipe.output, console)
        _paper_hint(plan, console)
    if summary.ok:
        return 0
    return 2 if summary.only_user_errors else 1  # 2: every failure is the input's to fix, as for the CLI's own


def _paper_hint(plan: Plan, console: Console) -> None:
    """A line pointing to `harness leaderboard --paper` when models of the run correspond to rows of the paper."""
    from harness.report.leaderboard.paper import reproducing_models

    n = reproducing_models(s.labels for s in plan.stages.values() if s.kind == StageKind.SCORE)
    if n:
        console.print(f"{n} model{'s' if n > 1 else ''} of this run correspond{'' if n > 1 else 's'} to rows of "
                      f"the Speech-FT paper's tables: `harness leaderboard {plan.recipe.output} --paper` sets its "
                      "numbers beside them.")


def _timing(summary: RunSummary) -> str:
    """The last line's timing of a run that ran stages: the wall time with a stage running, the stages'
    summed duration (failed ones included) and their ratio, how many ran at once on average."""
    if not summary.intervals:
        return ""
    times = StageTimes(summary.stage_seconds, busy_seconds(summary.intervals))
    at_once = f", {times.concurrency:.2f} at a time" if times.busy_seconds > 0 else ""
    return f" in {times.busy_seconds:.1f} s ({times.stage_seconds:.1f} s of stage time{at_once})"
