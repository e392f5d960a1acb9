"""The ``harness`` command: :func:`main` here, one sub-command per ``*_cmd`` module beside it.

The top layer: it may import every package of the harness, and nothing imports it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from types import ModuleType

from rich.console import Console
from rich.text import Text

from harness import __version__
from harness.core.errors import HarnessError


def _commands() -> dict[str, Callable[[], ModuleType]]:
    """Sub-command name -> its module, imported only when that command runs (torch is slow to import)."""

    def run():
        from harness.cli import run_cmd
        return run_cmd

    def plan():
        from harness.cli import plan_cmd
        return plan_cmd

    def results():
        from harness.cli import results_cmd
        return results_cmd

    def leaderboard():
        from harness.cli import leaderboard_cmd
        return leaderboard_cmd

    def plugins():
        from harness.cli import plugins_cmd
        return plugins_cmd

    def prepare():
        from harness.cli import prepare_cmd
        return prepare_cmd

    def extract():
        from harness.cli import extract_cmd
        return extract_cmd

    def merge():
        from harness.cli import merge_cmd
        return merge_cmd

    def abx():
        from harness.cli import abx_cmd
        return abx_cmd

    def score():
        from harness.cli import score_cmd
        return score_cmd

    return {f.__name__: f for f in (run, plan, results, leaderboard, plugins, prepare, extract, merge, abx, score)}


COMMANDS = _commands()

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness",
        description="Fine-tune, merge and evaluate self-supervised speech models (Speech-FT, SUPERB, ABX).",
    )
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, load in COMMANDS.items():
        if only is None or name == only:
            load().register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    words = [a for a in argv if not a.startswith("-")]
    only = words[0] if words and words[0] in COMMANDS else None
    parser = build_parser(only)
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
        err_console.print(Text.assemble(("error: ", "bold red"), str(exc)))
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("interrupted; finished stages are kept, rerun to resume.")
        return 130


