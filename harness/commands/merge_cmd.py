"""`harness merge` (not available yet)."""

from __future__ import annotations

import argparse

from harness.errors import HarnessError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("merge", help="(not available yet)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    raise HarnessError("`harness merge` is not available yet.")
