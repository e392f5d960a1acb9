"""`harness results DIR [DIR ...]`: what the stores hold (stages, metrics, errors)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from harness.core.errors import HarnessError
from harness.core.registry import default_manager
from harness.core.result_rows import distinct_outputs, metric_rows, stored_stages
from harness.core.stage_kinds import StageKind
from harness.core.store import StageRow
from harness.evaluation.scoring import coverage, coverage_text
from harness.report.leaderboard.rows import model_rows, row_key, task_rank
from harness.report.leaderboard.stores import read_stores
from harness.report.stage_times import StageTimes, stage_times


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("results", help="print what the results store of an output folder holds")
    parser.add_argument("output", type=Path, nargs="+",
                        help="the output folder of a run (several: their stores read as one, a stage found in two "
                             "once)")
    parser.add_argument("--json", action="store_true",
                        help='{"results": metric rows, "models": provenance per model, "recipes": their texts, '
                             '"times": stage times}')
    parser.add_argument("--failed", action="store_true", help="show failed stages with their errors")
    parser.add_argument("--times", action="store_true",
                        help="where the time went: stage time by kind and plugin, stages at a time, the longest")
    parser.set_defaults(func=run)


def score_coverage(stage_dir: Path) -> tuple[int, int] | None:
    """(tasks scored, tasks of the reference) of a score stage whose score is partial, from its score.json."""
    try:
        data = json.loads((stage_dir / "score.json").read_text(encoding="utf-8"))
        return coverage(data["tasks"], data["table"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def print_scores(output: Path, console: Console) -> None:
    """The SUPERB score of every model, as the last lines of `harness run`."""
    rows = [r for r in metric_rows(output) if r["metric"] == "superb.score" and r["current"]]
    if not rows:
        return
    table = Table(title="SUPERB score")
    for col in ("upstream", "model", "seed", "score"):
        table.add_column(col, justify="right" if col in ("seed", "score") else "left")
    for r in sorted(rows, key=_table_order([output], stored_stages(output))):
        table.add_row(str(r["upstream"]), str(r["model"]), str(r["seed"]),
                      f"{r['value']:.2f}{coverage_text(score_coverage(output / r['stage']))}")
    console.print(table)


def run(args: argparse.Namespace) -> int:
    outputs = distinct_outputs(args.output)
    rows = metric_rows(outputs)
    stages = stored_stages(outputs)
    if args.json:
        print(json.dumps({"results": rows, **_provenance(outputs), "times": stage_times(stages).as_dict()},
                         indent=2, ensure_ascii=False))
        return 0
    console = Console(highlight=False)
    by_status: dict[str, int] = {}
    for s in stages:
        by_status[s.status] = by_status.get(s.status, 0) + 1
    console.print(f"{len(stages)} stages: " + ", ".join(f"{n} {k}" for k, n in sorted(by_status.items())))
    table = Table(title=f"metrics in {', '.join(map(str, outputs))}")
    for col in ("stage", "upstream", "model", "seed", "metric", "value"):
        table.add_column(col, justify="right" if col in ("seed", "value") else "left", overflow="fold")
    shown = [r for r in rows if r["kind"] != StageKind.FINETUNE and r["current"]]
    for r in sorted(shown, key=_table_order(outputs, stages)):
        table.add_row(r["stage"][:8], str(r["upstream"]), str(r["model"]), str(r["seed"]), r["metric"],
                      f"{r['value']:.2f}")
    console.print(table)
    if old := sum(not r["current"] for r in rows):
        console.print(f"{old} metric{'s' if old > 1 else ''} of stages that later runs of the same cells replaced (the "
                      'recipe changed between runs) not shown; --json lists them with "current": false.')
    if args.times:
        print_times(stage_times(stages), console)
    if args.failed:
        for s in stages:
            if s.status == "failed":
                console.print(f"[red]{s.key[:8]} {s.name}[/]\n{s.error}")
    return 0


def _table_order(outputs: Sequence[Path], stages: list[StageRow]) -> Callable[[dict[str, Any]], tuple]:
    """A sort key for metric rows: the leaderboard's model order (upstream, the pre-trained model first, then
    fine-tuning and α), seed, then its columns' task order; rows of stages outside the leaderboard last."""
    try:
        order = {key: i for i, key in enumerate(model_rows(read_stores(outputs).stages))}
    except HarnessError:  # no finished evaluation yet
        order = {}
    labels = {s.key: s.labels for s in stages}
    plugins = default_manager()
    ranks: dict[str, tuple] = {}

    def key(row: dict[str, Any]) -> tuple:
        rank = ranks.setdefault(row["task"], task_rank(plugins, row["task"]))
        return (order.get(row_key(labels[row["stage"]]), len(order)), row["seed"] or 0, rank, row["metric"])

    return key


def _provenance(outputs: Sequence[Path]) -> dict[str, Any]:
    """The provenance records of every folder's models (a model stage found in two folders once) and the texts
    of every recipe behind them."""
    from harness.report.provenance import provenance

    models: dict[str, dict[str, Any]] = {}
    recipes: dict[str, Any] = {}
    for output in outputs:
        found = provenance(output)
        for record in found["models"]:
            models.setdefault(record["stage"], record)
        recipes.update(found["recipes"])
    return {"models": list(models.values()), "recipes": recipes}


def print_times(times: StageTimes, console: Console) -> None:
    """Stage time by kind and plugin with its share, the busy wall time and the longest stages."""
    table = Table(title="stage time by kind and plugin")
    for col in ("kind", "plugin", "stages", "seconds", "share"):
        table.add_column(col, justify="left" if col in ("kind", "plugin") else "right")
    for k in times.by_kind:
        share = k.seconds / times.stage_seconds if times.stage_seconds else 0.0
        table.add_row(k.kind, k.plugin, str(k.stages), f"{k.seconds:.1f}", f"{share:.0%}")
    console.print(table)
    console.print(f"stage time {times.stage_seconds:.1f} s in {times.busy_seconds:.1f} s of wall time with a stage "
                  f"running: {times.concurrency:.2f} stages at a time on average"
                  + (f"; {times.untimed} stages without a finished time" if times.untimed else ""))
    longest = Table(title="longest stages")
    for col in ("stage", "kind", "name", "seconds"):
        longest.add_column(col, justify="right" if col == "seconds" else "left")
    for s in times.longest:
        longest.add_row(s.key[:8], s.kind, s.name, f"{s.seconds:.1f}")
    console.print(longest)
