"""The results store: SQLite (WAL) in the output folder, written only by the driver.

Tables::

    stages(key PK, kind, plugin, name, params JSON, inputs JSON, labels JSON, status, started, ended,
           duration, host, git_commit, versions JSON, error, messages JSON)
    metrics(stage, task, metric, value, direction, n_items, items_path)

``status`` is ``done``, ``failed`` or ``running``. ``labels`` carries the planner's description of
the cell (upstream, finetune, merge, downstream, seed, alpha...) so the leaderboard can build rows.

    planned(cell PK, key, time)

``planned`` holds, for each cell (:func:`cell_identity`), the stage the latest run planned for it: when a
recipe changes between runs into one folder, the store keeps every finished stage, and this says which
one of a cell is current (:func:`current_by_cell`), also after a run that found everything cached.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError

log = logging.getLogger("harness.core.store")

DB_NAME = "results.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS stages (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    plugin TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    params TEXT NOT NULL DEFAULT '{}',
    inputs TEXT NOT NULL DEFAULT '{}',
    labels TEXT NOT NULL DEFAULT '{}',
    status TEXT NOT NULL,
    started REAL,
    ended REAL,
    duration REAL,
    host TEXT,
    git_commit TEXT,
    versions TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    messages TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS metrics (
    stage TEXT NOT NULL,
    task TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL NOT NULL,
    direction TEXT NOT NULL,
    n_items INTEGER,
    items_path TEXT,
    PRIMARY KEY (stage, task, metric)
);
CREATE TABLE IF NOT EXISTS planned (
    cell TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    time REAL NOT NULL
);
"""


class StoreDamaged(HarnessError):
    """The results store is not a readable SQLite database (garbage, truncated, corrupt)."""


@dataclass
class StageRow:
    key: str
    kind: str
    plugin: str
    name: str
    params: dict[str, Any]
    inputs: dict[str, str]
    labels: dict[str, Any]
    status: str
    started: float | None
    ended: float | None
    duration: float | None
    host: str | None
    git_commit: str | None
    versions: dict[str, str]
    error: str | None
    messages: list[str]


@dataclass
class MetricRow:
    stage: str
    task: str
    metric: str
    value: float
    direction: str
    n_items: int | None
    items_path: str | None

    @property
    def full_name(self) -> str:
        return f"{self.task}.{self.metric}"


class Store:
    """Open (creating if needed) the store of an output folder."""

    def __init__(self, output_dir: Path, readonly: bool = False):
        self.output_dir = Path(output_dir)
        self.path = self.output_dir / DB_NAME
        self.set_aside: Path | None = None  # where a damaged store was moved when this one was rebuilt
        if readonly:
            self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
            problem = self._damage()
            if problem:
                self._db.close()
                raise StoreDamaged(f"the results store {self.path} is damaged ({problem}); rerun `harness run` "
                                   "on this output folder to rebuild it from the finished stage folders.")
        else:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30)
            problem = self._damage()
            if problem:
                self._db.close()
                self.set_aside = self._set_aside()
                log.warning("the results store %s was damaged (%s); kept it as %s and rebuilt it from the "
                            "finished stage folders", self.path, problem, self.set_aside.name)
                self._db = sqlite3.connect(self.path, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        self._db.row_factory = sqlite3.Row

    def _damage(self) -> str | None:
        """Why the open database cannot be trusted (not SQLite, truncated, corrupt), or None."""
        try:
            rows = self._db.execute("PRAGMA quick_check").fetchall()
        except sqlite3.OperationalError:
            raise  # locked or out of space: not damage
        except sqlite3.DatabaseError as exc:
            return str(exc)
        verdict = "; ".join(str(r[0]) for r in rows[:3])
        return None if verdict == "ok" else verdict

    def _set_aside(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.path.with_name(f"{DB_NAME}.damaged-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                os.replace(src, Path(f"{target}{suffix}"))
        return target

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._db:
            yield self._db

    # ------------------------------------------------------------------ writing

    def record_stage(self, row: StageRow) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO stages VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    row.key, row.kind, row.plugin, row.name, json.dumps(row.params, sort_keys=True),
                    json.dumps(row.inputs, sort_keys=True), json.dumps(row.labels, sort_keys=True),
                    row.status, row.started, row.ended, row.duration, row.host, row.git_commit,
                    json.dumps(row.versions, sort_keys=True), row.error, json.dumps(row.messages),
                ),
            )

    def record_metrics(self, stage: str, rows: list[MetricRow]) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM metrics WHERE stage = ?", (stage,))
            db.executemany(
                "INSERT INTO metrics VALUES (?,?,?,?,?,?,?)",
                [(stage, r.task, r.metric, r.value, r.direction, r.n_items, r.items_path) for r in rows],
            )

    def record_plan(self, stages: Iterable[tuple[str, str]], when: float) -> None:
        """Each ``(cell, stage key)`` a run planned, at time ``when`` (the current stage of those cells)."""
        with self._tx() as db:
            db.executemany("INSERT OR REPLACE INTO planned VALUES (?,?,?)",
                           [(cell, key, when) for cell, key in stages])

    # ------------------------------------------------------------------ reading

    def planned(self) -> dict[str, tuple[str, float]]:
        """Cell -> (the stage key the latest run planned for it, when); empty for a store older than the table."""
        try:
            rows = self._db.execute("SELECT cell, key, time FROM planned").fetchall()
        except sqlite3.OperationalError:  # read-only, made before the table existed
            return {}
        return {r[0]: (r[1], r[2]) for r in rows}

    def stage(self, key: str) -> StageRow | None:
        row = self._db.execute("SELECT * FROM stages WHERE key = ?", (key,)).fetchone()
        return _stage_row(row) if row else None

    def stages(self, kind: str | None = None, status: str | None = None) -> list[StageRow]:
        query, args = "SELECT * FROM stages WHERE 1=1", []
        if kind:
            query += " AND kind = ?"
            args.append(kind)
        if status:
            query += " AND status = ?"
            args.append(status)
        return [_stage_row(r) for r in self._db.execute(query + " ORDER BY started", args)]

    def metrics(self, stage: str | None = None) -> list[MetricRow]:
        if stage is None:
            rows = self._db.execute("SELECT * FROM metrics ORDER BY stage, task, metric")
        else:
            rows = self._db.execute("SELECT * FROM metrics WHERE stage = ? ORDER BY task, metric", (stage,))
        return [MetricRow(**dict(r)) for r in rows]

    def done_keys(self) -> set[str]:
        return {r[0] for r in self._db.execute("SELECT key FROM stages WHERE status = 'done'")}


def _stage_row(row: sqlite3.Row) -> StageRow:
    d = dict(row)
    for field in ("params", "inputs", "labels", "versions", "messages"):
        d[field] = json.loads(d[field]) if d[field] else ({} if field != "messages" else [])
    return StageRow(**d)


def cell_identity(kind: str, labels: dict[str, Any]) -> str:
    """What makes two stages runs of the same cell (the same model, downstream and seed): their kind and
    labels, without the ``rank`` a reordered recipe changes."""
    return json.dumps([kind, {k: v for k, v in labels.items() if k != "rank"}], sort_keys=True, default=str)


def current_by_cell(stages: Iterable[StageRow], planned: dict[str, tuple[str, float]] | None = None
                    ) -> dict[str, StageRow]:
    """The current finished stage of each cell: the one the latest run planned for it (``planned``, from
    :meth:`Store.planned`) when that one finished, else the newest."""
    done = sorted((s for s in stages if s.status == "done"), key=lambda s: s.started or 0.0)
    current = {cell_identity(s.kind, s.labels): s for s in done}  # the newest of each cell
    by_key = {s.key: s for s in done}
    for cell, (key, _) in (planned or {}).items():
        if cell in current and key in by_key:
            current[cell] = by_key[key]
    return current


def replaced_keys(stages: Iterable[StageRow], planned: dict[str, tuple[str, float]] | None = None) -> set[str]:
    """Keys of finished stages that are not current in their cell (:func:`current_by_cell`): the same model,
    downstream and seed run again after its recipe changed (a probe's steps, a corpus) into one output
    folder. The store keeps both; tables show the current one."""
    finished = [s for s in stages if s.status == "done"]
    return {s.key for s in finished} - {s.key for s in current_by_cell(finished, planned).values()}
