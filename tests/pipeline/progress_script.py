"""Runs a slow toy recipe the way `harness run` shows it: logging through the command's console, a
log record every 0.1 s while the stages run. Arguments: the recipe file and the heartbeat period."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

from harness.cli.console import configure_logging, err_console
from harness.core.plan import build_plan
from harness.core.recipe import load_recipe
from harness.pipeline.executors.local import LocalExecutor
from harness.pipeline.run import run_plan
from tests.core_helpers import toy_manager

#: a message longer than any terminal: a log file must keep it on one line
LONG_MESSAGE = "tick " + "word " * 40


def _ticker(stop: threading.Event) -> None:
    log = logging.getLogger("harness.tests.ticker")
    while not stop.wait(0.1):
        log.info(LONG_MESSAGE)


if __name__ == "__main__":
    configure_logging(err_console)
    manager = toy_manager()
    recipe = load_recipe(Path(sys.argv[1]), manager)
    stop = threading.Event()
    threading.Thread(target=_ticker, args=(stop,), daemon=True).start()
    try:
        summary = run_plan(build_plan(recipe, manager), recipe.output, LocalExecutor(manager),
                           console=err_console, heartbeat_s=float(sys.argv[2]))
    finally:
        stop.set()
    sys.exit(0 if summary.ok else 1)
