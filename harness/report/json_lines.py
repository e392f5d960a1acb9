"""A JSON-lines file (per-item results) read in one parse: with ``orjson`` where it is installed
(``pip install 'speech-ft-harness[fast]'``), which reads these files 1.5–2× faster than ``json``
(``benchmarks/bench_leaderboard_scale.py``), else with ``json``. A file ``orjson`` refuses (``NaN``,
which ``json.dumps`` writes) is read by ``json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

try:
    import orjson
except ImportError:  # optional: the standard library reads the same files
    orjson = None


def read_json_lines(path: Path) -> list[Any]:
    """Every non-blank line of ``path`` as a JSON value, in order (``json.JSONDecodeError`` or
    ``UnicodeDecodeError`` for a file that is not JSON lines)."""
    joined = b"[" + b",".join(line for line in Path(path).read_bytes().splitlines() if line.strip()) + b"]"
    if orjson is not None:
        try:
            return orjson.loads(joined)
        except orjson.JSONDecodeError:
            pass  # NaN or Infinity, which json accepts; or not JSON, which json reports alike
    return json.loads(joined)
