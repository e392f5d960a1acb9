"""Output folders: made (or refused in one sentence) before anything is written, and locked while a run writes."""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import time
from pathlib import Path
from typing import IO

from harness.core.errors import HarnessError

LOCK_NAME = ".harness.lock"


def make_output_dir(path: Path, flag: str = "--output") -> Path:
    """Create ``path`` (and its parents) and check it can be written; a HarnessError names why not."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise HarnessError(f"{path} is a file, not a folder; choose another {flag}.")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".harness-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise HarnessError(f"cannot write to {path} ({reason.lower()}); choose a writable {flag}.") from None
    return path


def disk_full_message(where: Path | str) -> str:
    return (f"the disk holding {where} is full; free some space and rerun the same command "
            "(finished stages are kept).")


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` is a write that failed for lack of space (OS or SQLite)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return type(exc).__name__ == "OperationalError" and "disk is full" in str(exc)


class OutputLock:
    """An exclusive lock on an output folder for one run; a second run is refused, naming the first."""

    def __init__(self, output: Path):
        self.path = Path(output) / LOCK_NAME
        self._file: IO[str] | None = None

    def __enter__(self) -> OutputLock:
        f = open(self.path, "a+")  # noqa: SIM115 - held open for the lock's lifetime
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            raise HarnessError(f"{self.path.parent} is in use by another `harness run` ({holder}); wait for it "
                               "to finish or give this run another --output.") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}")
        f.flush()
        self._file = f
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.truncate(0)
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None
