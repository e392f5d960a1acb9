"""The one stderr console of the ``harness`` command: errors, log records and progress bars all go
through it, so a log line never lands in the middle of a bar, and a log file gets one line per message."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.text import Text

from harness.pipeline.progress import PRINT_LOCK

#: stderr; never hard-wraps what it prints (a terminal wraps long lines itself, a log file keeps them whole)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

_NOISY = ("urllib3", "matplotlib", "filelock", "PIL")


class ConsoleHandler(logging.Handler):
    """Prints log records with a rich console: above its live progress bars on a terminal, one line per
    message (newlines of the message kept as they are) in a file."""

    def __init__(self, console: Console, level: int = logging.NOTSET):
        super().__init__(level)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            with PRINT_LOCK:  # never while the bars stop (see PRINT_LOCK)
                self.console.print(Text(self.format(record)), soft_wrap=not self.console.is_terminal)
        except Exception:  # a broken log line must not stop the run
            self.handleError(record)


def configure_logging(console: Console = err_console, verbose: bool = False) -> None:
    """Route the root logger through ``console`` (replacing handlers an earlier call installed)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, ConsoleHandler):
            root.removeHandler(handler)
    handler = ConsoleHandler(console)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
