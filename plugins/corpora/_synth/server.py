"""Render servers: small processes that render utterances, one freshly forked child each.

espeak-ng must synthesize every utterance from the same state (see :mod:`.espeak`), so a server
initialises the library once and forks a child per utterance. The servers are started with
``python -m`` as new processes (not forked from the caller): they import only numpy, scipy,
soundfile, soxr and this package, so a fork costs a few milliseconds and never copies a caller
that holds models or threads. Messages are length-prefixed pickles between this module's own
processes.
"""

from __future__ import annotations

import importlib
import os
import pickle
import selectors
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from harness.api import HarnessError

SERVER_MODULE = "plugins.corpora._synth.server"
_HEADER = struct.Struct("<Q")


def _write(fd: int, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exact(stream: BinaryIO, n: int) -> bytes | None:
    chunks, need = [], n
    while need:
        chunk = stream.read(need)
        if not chunk:
            return None
        chunks.append(chunk)
        need -= len(chunk)
    return b"".join(chunks)


def _read(stream: BinaryIO) -> Any:
    head = _read_exact(stream, _HEADER.size)
    if head is None:
        return None
    body = _read_exact(stream, _HEADER.unpack(head)[0])
    return None if body is None else pickle.loads(body)  # our own process's bytes


#: modules a render needs that load on first use; imported once by the server so that no forked
#: child pays for them (scipy.signal alone takes about a second, 50 times the render itself)
PRELOADED = ("scipy.signal",)


def preload() -> None:
    """Import :data:`PRELOADED` into this process."""
    for name in PRELOADED:
        importlib.import_module(name)


def serve() -> None:
    """Server loop: read (index, spec, out_dir, cfg), answer (index, "ok", row) or (index, "error", text)."""
    from plugins.corpora._synth.espeak import Espeak
    from plugins.corpora._synth.render import render

    reply_fd = os.dup(1)
    os.dup2(2, 1)  # anything printed goes to stderr, never into the replies
    preload()
    engine = Espeak()
    engine.preload()
    requests = sys.stdin.buffer
    while True:
        msg = _read(requests)
        if msg is None:
            return
        index, spec, out_dir, cfg = msg
        pid = os.fork()
        if pid == 0:
            try:
                reply = (index, "ok", render(engine, spec, out_dir, cfg))
            except BaseException as exc:  # noqa: BLE001 - reported to the caller
                reply = (index, "error", f"{type(exc).__name__}: {exc}")
            try:
                _write(reply_fd, reply)
            finally:
                os._exit(0)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            _write(reply_fd, (index, "error", f"render process exited with status {status}"))


class RenderPool:
    """``n`` servers rendering jobs concurrently; results come back in job order."""

    def __init__(self, n: int):
        # the folder holding the `plugins` package, so the servers import this very code
        source_root = str(Path(__file__).resolve().parents[3])
        python_path = os.pathsep.join(p for p in (source_root, os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, "PYTHONPATH": python_path,
               "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # fmt: skip
        self._logs = [tempfile.TemporaryFile() for _ in range(max(1, n))]
        self._procs = [
            subprocess.Popen(
                [sys.executable, "-m", SERVER_MODULE],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
            )
            for log in self._logs
        ]

    def map(
        self, jobs: Sequence[tuple[Any, ...]], on_done: Callable[[int, int], None] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Render every job; yields rows in job order."""
        results: dict[int, dict[str, Any]] = {}
        pending = iter(enumerate(jobs))
        sel = selectors.DefaultSelector()
        busy = 0

        def feed(proc: subprocess.Popen) -> bool:
            item = next(pending, None)
            if item is None:
                return False
            assert proc.stdin is not None
            _write(proc.stdin.fileno(), (item[0], *item[1]))
            return True

        try:
            for proc in self._procs:
                assert proc.stdout is not None
                sel.register(proc.stdout, selectors.EVENT_READ, proc)
                busy += feed(proc)
            next_out, done = 0, 0
            while busy:
                for key, _ in sel.select():
                    proc = key.data
                    reply = _read(key.fileobj)  # type: ignore[arg-type]
                    if reply is None:
                        raise HarnessError(f"a synthetic-corpus render server stopped ({self._stderr(proc)}).")
                    index, status, payload = reply
                    if status != "ok":
                        raise HarnessError(f"rendering synthetic utterance {jobs[index][0].id} failed ({payload}).")
                    results[index] = payload
                    done += 1
                    if on_done is not None:
                        on_done(done, len(jobs))
                    busy -= 1
                    busy += feed(proc)
                while next_out in results:
                    yield results.pop(next_out)
                    next_out += 1
        finally:
            sel.close()

    def _stderr(self, proc: subprocess.Popen) -> str:
        proc.kill()
        proc.wait()
        log = self._logs[self._procs.index(proc)]
        log.seek(0)
        lines = log.read().decode("utf-8", "replace").strip().splitlines()
        return lines[-1].rstrip(".") if lines else f"exit status {proc.returncode}"

    def close(self) -> None:
        for proc in self._procs:
            if proc.stdin is not None and not proc.stdin.closed:
                proc.stdin.close()
        for proc in self._procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        for log in self._logs:
            log.close()

    def __enter__(self) -> RenderPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    serve()
