"""`harness score`: the SUPERB score of metrics given on the command line.

    harness score --reference superb-2024 pr.per=5.17 sid.acc=81.86 er.acc=64.99 sf.f1=88.54 sf.cer=24.70
"""

from __future__ import annotations

import argparse
import json

from harness.core.errors import HarnessError
from harness.evaluation.scoring import BUILTIN_TABLES, DEFAULT_TABLE, coverage_text, get_table, superb_score


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "score",
        help="SUPERB score of task.metric=value pairs",
        description="Scale each metric between FBank (0) and the reference's SOTA (1000), average the metrics "
        "of a task, then the tasks.",
    )
    parser.add_argument(
        "--reference",
        default=DEFAULT_TABLE,
        help=f"reference table: {', '.join(BUILTIN_TABLES)} (default {DEFAULT_TABLE}) or a YAML file "
        "of {task.metric: {fbank: x, sota: y}}",
    )
    parser.add_argument("metrics", nargs="+", metavar="task.metric=value", help="e.g. pr.per=5.17 sid.acc=81.86")
    parser.add_argument("--json", action="store_true", help='print {"score": ..., "tasks": {...}}')
    parser.set_defaults(func=run)


def parse_metrics(pairs: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or "." not in name:
            raise HarnessError(f"{pair!r} is not of the form task.metric=value; write e.g. pr.per=5.17.")
        try:
            out[name.strip().lower()] = float(value)
        except ValueError:
            raise HarnessError(f"{pair!r}: {value!r} is not a number.") from None
    return out


def run(args: argparse.Namespace) -> int:
    result = superb_score(parse_metrics(args.metrics), get_table(args.reference))
    if args.json:
        print(json.dumps({"score": result.score, "tasks": result.tasks,
                          "reference_tasks": result.reference_tasks}, sort_keys=True))
        return 0
    for task, value in result.tasks.items():
        print(f"{task:<6} {value:9.2f}")
    print(f"{'score':<6} {result.score:9.2f}{coverage_text(result.coverage)}")
    return 0
