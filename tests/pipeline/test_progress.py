"""What a run shows: bars that keep counts and ETA in an 80-column terminal, log lines above them,
heartbeat lines in a log file, one line per message."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from harness.pipeline.progress import _Running, format_info
from tests.core_helpers import TOY_RECIPE, write_recipe
from tests.pipeline.progress_script import LONG_MESSAGE

ROOT = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
BAR = "━"
#: counts, elapsed time, "eta" and the remaining time at the end of every bar line
BAR_TAIL = re.compile(r"\d+/(\d+|\?) +\d+:\d\d:\d\d +eta +(-:--:--|\d+:\d\d:\d\d)\s*$")
#: a long-named, slow toy recipe whose fine-tuning stage reports loss on every step
SLOW = (TOY_RECIPE.replace("steps: 3}}", "steps: 20, sleep: 0.1}}")
        .replace("small:", "a_rather_long_upstream_name_that_fills_the_line:")
        .replace("alpha: [0.0, 0.25, 1.0]", "alpha: [0.5]"))


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "TERM")}
    return {**env, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color"}


def _run_in_pty(args: list[str], columns: int) -> str:
    """Run ``args`` with a pseudo-terminal of ``columns`` columns as stdin, stdout and stderr."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    proc = subprocess.Popen(args, stdin=child, stdout=child, stderr=child, env=_env(), cwd=ROOT, close_fds=True)
    os.close(child)
    chunks = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            data = os.read(main, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=30)
    os.close(main)
    assert proc.returncode == 0, b"".join(chunks).decode(errors="replace")[-3000:]
    return b"".join(chunks).decode(errors="replace")


def _screen_lines(raw: str) -> list[str]:
    """The lines as drawn: cursor moves and erases split lines; colours are dropped."""
    text = re.sub(r"\x1b\[\d*[AK]|\x1b\[2K|\r", "\n", raw)
    return [line.rstrip() for line in ANSI.sub("", text).split("\n") if line.strip()]


def test_bars_keep_counts_and_eta_in_an_80_column_terminal_and_logs_print_above_them(tmp_path):
    recipe = write_recipe(tmp_path, SLOW)
    raw = _run_in_pty([sys.executable, "-m", "tests.pipeline.progress_script", str(recipe), "30"], columns=80)
    lines = _screen_lines(raw)
    bars = [line for line in lines if BAR in line]
    assert any("finetune" in line for line in bars), lines[-20:]
    assert any(line.lstrip().startswith("stages") for line in bars)
    for line in bars:
        assert len(line) <= 80, line
        assert BAR_TAIL.search(line), f"bar line lost its counts or ETA: {line!r}"
        assert "INFO" not in line, f"a log record glued onto a bar: {line!r}"
    # the fine-tuning bar counted its steps against its own total
    assert any(re.search(r"\b\d+/20\b", line) for line in bars)
    logs = [line for line in lines if "harness.tests.ticker" in line]
    assert logs and all(line.startswith("INFO") for line in logs)


def test_a_new_stage_bar_starts_from_zero_with_its_own_total(tmp_path):
    recipe = write_recipe(tmp_path, SLOW)
    raw = _run_in_pty([sys.executable, "-m", "tests.pipeline.progress_script", str(recipe), "30"], columns=120)
    lines = _screen_lines(raw)
    # stages after fine-tuning report no steps: their bars show 0/? and their own elapsed time, not 20's
    later = [line for line in lines if BAR in line and re.search(r"\b(merge|evaluate|score)\b", line)]
    assert later, lines[-20:]
    assert not any(re.search(r"\b\d+/20\b", line) for line in later), later


def test_a_log_file_gets_heartbeats_and_one_line_per_message(tmp_path):
    recipe = write_recipe(tmp_path, SLOW)
    proc = subprocess.run([sys.executable, "-m", "tests.pipeline.progress_script", str(recipe), "0.4"],
                          capture_output=True, text=True, env=_env(), cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    beats = [line for line in lines if line.startswith("… ") and "finetune" in line]
    assert len(beats) >= 2, proc.stderr[-3000:]
    pattern = re.compile(r"step (\d+)/20, [\d.]+ steps/s, eta \d+:\d\d:\d\d, running \d+:\d\d:\d\d$")
    steps = [int(m.group(1)) for m in map(pattern.search, beats) if m]
    assert len(steps) == len(beats), beats
    assert steps == sorted(steps) and steps[-1] > steps[0]
    assert not any(BAR in line or "\x1b[" in line for line in lines)
    ticks = [line for line in lines if "harness.tests.ticker" in line]
    assert ticks and all(line == f"INFO harness.tests.ticker: {LONG_MESSAGE}" for line in ticks)
    assert any(line.startswith("done ") and "finetune" in line for line in lines)


def test_heartbeat_says_when_no_step_was_reported_and_leaves_out_the_rate_until_there_is_one():
    entry = _Running(title="evaluate x", started=100.0)
    assert entry.heartbeat(165.0) == "evaluate x: running 0:01:05, no step reported yet"
    entry.step, entry.total, entry.first, entry.last = 10, 100, (110.0, 10), (110.0, 10)
    assert entry.heartbeat(170.0) == "evaluate x: step 10/100, running 0:01:10"
    entry.step, entry.last = 30, (120.0, 30)
    assert entry.heartbeat(170.0) == "evaluate x: step 30/100, 2 steps/s, eta 0:00:35, running 0:01:10"


@pytest.mark.parametrize(("info", "text"), [
    ({"loss": 0.51234, "lr": 1e-4, "steps_per_s": 12.5}, "loss=0.512 lr=0.0001 it/s=12.5"),
    ({"epoch": 3}, "epoch=3"),
])
def test_extra_fields_are_short(info, text):
    assert format_info(info) == text


def test_a_record_printed_while_the_bars_stop_is_not_glued_to_them(monkeypatch):
    """A log record that starts printing just before the bars stop ends before they do, so rich does not
    draw them again after their last line and the next record starts a line of its own."""
    import io
    import logging
    import threading

    from rich.console import Console
    from rich.live import Live

    from harness.cli.console import ConsoleHandler
    from harness.pipeline.progress import StageProgress

    console = Console(file=io.StringIO(), force_terminal=True, width=80)
    handler = ConsoleHandler(console)
    handler.setFormatter(logging.Formatter("%(message)s"))
    entered, proceed = threading.Event(), threading.Event()
    original = Live.process_renderables

    def paused(self, renderables):  # the record's print has taken the display's hook; hold it there
        if threading.current_thread().name == "late-record":
            entered.set()
            proceed.wait(0.5)
        return original(self, renderables)

    monkeypatch.setattr(Live, "process_renderables", paused)
    progress = StageProgress(console, total_stages=1).__enter__()
    progress.start("k", "evaluate pr")
    late = threading.Thread(target=handler.emit, name="late-record",
                            args=(logging.makeLogRecord({"msg": "late record", "levelno": 20}),))
    late.start()
    assert entered.wait(5)
    threading.Timer(0.2, proceed.set).start()
    progress.__exit__(None, None, None)
    late.join()
    handler.emit(logging.makeLogRecord({"msg": "next record", "levelno": 20}))
    lines = _screen_lines(console.file.getvalue())
    assert lines[-1] == "next record", lines[-4:]
    assert not any(BAR in line and "record" in line for line in lines), lines
