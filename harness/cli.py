"""The ``harness`` command: one sub-command per module in :mod:`harness.commands`."""

from __future__ import annotations

import argparse
import logging
import sys

from rich.console import Console

from harness import __version__
from harness.commands import (
    abx_cmd,
    extract_cmd,
    leaderboard_cmd,
    merge_cmd,
    plan_cmd,
    plugins_cmd,
    prepare_cmd,
    results_cmd,
    run_cmd,
    score_cmd,
)
from harness.errors import HarnessError

COMMANDS = (
    run_cmd,
    plan_cmd,
    results_cmd,
    leaderboard_cmd,
    plugins_cmd,
    prepare_cmd,
    extract_cmd,
    merge_cmd,
    abx_cmd,
    score_cmd,
)

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness",
        description="Fine-tune, merge and evaluate self-supervised speech models (Speech-FT, SUPERB, ABX).",
    )
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("urllib3", "matplotlib", "filelock", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except HarnessError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("interrupted; finished stages are kept, rerun to resume.")
        return 130


if __name__ == "__main__":
    sys.exit(main())
