"""What a run shows while it works: bars on a terminal, heartbeat lines in a log file.

On a terminal, one bar counts the stages and one bar per running stage counts its steps; each bar
line keeps its bar, counts, elapsed time and ETA at any width, dropping the stage's extra fields
(loss, lr) first and then shortening its title. When the output is not a terminal (a batch job's log),
no bars are drawn: every ``heartbeat_s`` seconds a line per running stage says its step, rate and ETA.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column
from rich.text import Text

#: seconds between heartbeat lines when the output is not a terminal
HEARTBEAT_S = 30.0

#: held while a line is printed above the bars (a log record, a stage's line) and while the bars stop. A line
#: printed from another thread as they stop would otherwise draw the bars once more after their final newline
#: (rich redraws a live display after every print that started while it ran), and the next line would be glued
#: to the last bar. Not taken by rich's own refresh, so there is no lock-order cycle with the display's lock.
PRINT_LOCK = threading.RLock()

#: columns the bar, counts ("1000/1000"), elapsed time, "eta" and remaining time need, spaces included
_FIXED_WIDTH = 10 + 1 + 9 + 1 + 7 + 1 + 3 + 1 + 7 + 1
_SHORT_NAMES = {"steps_per_s": "it/s", "loss": "loss", "lr": "lr"}


def format_info(info: dict[str, Any]) -> str:
    """A stage's extra fields, short: ``loss=0.512 lr=1e-04``."""
    parts = []
    for key, value in info.items():
        name = _SHORT_NAMES.get(key, key)
        parts.append(f"{name}={value:.3g}" if isinstance(value, float) else f"{name}={value}")
    return " ".join(parts)


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=int(max(seconds, 0))))


class _TitleColumn(ProgressColumn):
    """The task's title, then its extra fields if they fit; never wider than the console leaves."""

    def __init__(self, console: Console):
        super().__init__(table_column=Column(no_wrap=True))
        self._console = console

    def render(self, task: Task) -> Text:
        room = max(self._console.width - _FIXED_WIDTH - self._bar_width() + 10, 12)
        title = task.description
        info = task.fields.get("info", "")
        if info and len(title) + 1 + len(info) <= room:
            title = f"{title} {info}"
        text = Text(title, no_wrap=True, overflow="ellipsis")
        text.truncate(room, overflow="ellipsis")
        return text

    def _bar_width(self) -> int:
        return bar_width(self._console.width)


def bar_width(console_width: int) -> int:
    """The bar's width: 10 columns up to 100, growing to 40 on wide terminals."""
    return max(10, min(40, console_width - 90))


class _Eta(TimeRemainingColumn):
    """``eta H:MM:SS``, or ``eta -:--:--`` while the stage has not said how many steps it has."""

    def render(self, task: Task) -> Text:
        left = super().render(task) if task.total is not None else Text("")
        return Text(f"eta {left.plain or '-:--:--'}", style="progress.remaining")


class _Bar(BarColumn):
    def __init__(self, console: Console):
        super().__init__(bar_width=10)
        self._console = console

    def render(self, task: Task):
        self.bar_width = bar_width(self._console.width)
        return super().render(task)


@dataclass
class _Running:
    title: str
    started: float
    step: int = 0
    total: int = 0
    first: tuple[float, int] | None = None  # (time, step) of the first report: the rate ignores resumed steps
    last: tuple[float, int] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    task: TaskID | None = None

    def rate(self) -> float | None:
        if self.first is None or self.last is None or self.last[0] <= self.first[0]:
            return None
        return (self.last[1] - self.first[1]) / (self.last[0] - self.first[0])

    def heartbeat(self, now: float) -> str:
        running = _clock(now - self.started)
        if self.last is None:
            return f"{self.title}: running {running}, no step reported yet"
        step = f"step {self.step}/{self.total}" if self.total else f"step {self.step}"
        rate = self.rate()
        parts = [step]
        if rate:
            parts.append(f"{rate:.3g} steps/s")
            if self.total:
                parts.append(f"eta {_clock((self.total - self.step) / rate)}")
        parts.append(f"running {running}")
        return f"{self.title}: {', '.join(parts)}"


class StageProgress:
    """The progress display of one run; use as a context manager.

    ``start``/``update``/``finish`` may be called from executor threads.
    """

    def __init__(self, console: Console, total_stages: int, heartbeat_s: float = HEARTBEAT_S):
        self.console = console
        self.live = console.is_terminal
        self.heartbeat_s = heartbeat_s
        self._lock = threading.Lock()
        self._running: dict[str, _Running] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._progress: Progress | None = None
        self._overall: TaskID | None = None
        if self.live and total_stages:
            columns = (_TitleColumn(console), _Bar(console), MofNCompleteColumn(), TimeElapsedColumn(),
                       _Eta())
            self._progress = Progress(*columns, console=console, transient=False)
            self._overall = self._progress.add_task("stages", total=total_stages, info="")

    def __enter__(self) -> StageProgress:
        if self._progress is not None:
            self._progress.start()
        elif not self.live and self.heartbeat_s > 0:
            self._thread = threading.Thread(target=self._beat, name="harness-heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._progress is not None:
            with PRINT_LOCK:
                self._progress.stop()

    def print(self, markup: str) -> None:
        """A line above the bars (or in the log); never hard-wrapped in a file."""
        with PRINT_LOCK:
            self.console.print(markup, highlight=False, soft_wrap=not self.live)

    def start(self, key: str, title: str) -> None:
        with self._lock:
            entry = _Running(title=title, started=time.monotonic())
            if self._progress is not None:
                entry.task = self._progress.add_task(f"  {title}", total=None, info="")
            self._running[key] = entry

    def update(self, key: str, step: int, total: int, info: dict[str, Any]) -> None:
        now = time.monotonic()
        with self._lock:
            entry = self._running.get(key)
            if entry is None:
                return
            entry.step, entry.total, entry.info = step, total, info
            entry.last = (now, step)
            if entry.first is None:
                entry.first = (now, step)
            if self._progress is not None and entry.task is not None:
                self._progress.update(entry.task, completed=step, total=total or None, info=format_info(info))

    def finish(self, key: str) -> None:
        with self._lock:
            entry = self._running.pop(key, None)
            if self._progress is not None:
                if entry is not None and entry.task is not None:
                    self._progress.remove_task(entry.task)
                self._progress.advance(self._overall)

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            now = time.monotonic()
            with self._lock:
                lines = [e.heartbeat(now) for e in self._running.values() if now - e.started >= self.heartbeat_s]
            with PRINT_LOCK:
                for line in lines:
                    self.console.print(Text(f"… {line}"), highlight=False, soft_wrap=True)
