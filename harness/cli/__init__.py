"""The ``harness`` command: :func:`main` here, one sub-command per ``*_cmd`` module beside it.

The top layer: it may import every package of the harness, and nothing imports it.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Callable
from types import ModuleType

from rich.text import Text

from harness import __version__
from harness.cli.console import configure_logging, err_console
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

    def compare():
        from harness.cli import compare_cmd
        return compare_cmd

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

    def der():
        from harness.cli import der_cmd
        return der_cmd

    def eer():
        from harness.cli import eer_cmd
        return eer_cmd

    def models():
        from harness.cli import models_cmd
        return models_cmd

    def export():
        from harness.cli import export_cmd
        return export_cmd

    def drift():
        from harness.cli import drift_cmd
        return drift_cmd

    return {f.__name__: f for f in (run, plan, results, leaderboard, compare, plugins, prepare, extract, merge, abx,
                                          score, der, eer, models, export, drift)}


COMMANDS = _commands()


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
    configure_logging(err_console, verbose=args.verbose)
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except HarnessError as exc:
        err_console.print(Text.assemble(("error: ", "bold red"), str(exc)))
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("interrupted; finished stages are kept, rerun to resume.")
        return 130
    except BrokenPipeError:  # `harness results --json | head`: the reader left; say nothing more
        _silence_stdout()
        return 141
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        err_console.print(Text.assemble(("error: ", "bold red"), f"the disk is full ({exc.filename or 'writing'}); "
                                        "free some space and rerun the same command (finished work is kept)."))
        return 2


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout replaced by a test's capture
        pass


