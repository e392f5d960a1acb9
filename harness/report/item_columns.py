"""An evaluation's per-item results (``items.jsonl``) as columns, and a binary copy that reads back at once.

``items.jsonl`` keeps one JSON line per item, ``{"id", "stats": {metric: ...}[, "fold"]}``, which anyone can
read; but parsing it is most of what a full-size leaderboard spends (QbE keeps each query's gain at every
threshold, ASV a line per trial: ``benchmarks/bench_leaderboard_scale.py``). The first read therefore writes
the columns beside the file as ``items.jsonl.npz`` (numpy arrays, read back without unpickling), with the
size and modification time of the ``items.jsonl`` they came from; a later read takes them when both still
match, and otherwise parses the file again. A folder that cannot be written is read without the copy.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.report.json_lines import read_json_lines

#: the binary copy's layout; a copy of another version is parsed anew
VERSION = 2
SUFFIX = ".npz"


@dataclass(frozen=True)
class MetricColumn:
    """One metric's stored stats over the items that carry it, in one of three forms (the kind):
    ``pair`` (``values [n × 2]``: num, den), ``trial`` (``targets [n]``, ``values [n]``: scores, and
    optionally ``groups``) or ``gains`` (``values [n × thresholds]``)."""

    rows: np.ndarray  # positions in ItemColumns.ids of the items that carry the metric, in file order
    kind: str
    values: np.ndarray
    targets: np.ndarray | None = None
    groups: tuple[str, ...] | None = None

    def take(self, positions: np.ndarray) -> MetricColumn:
        """The same metric at some of its items (positions into ``rows``)."""
        groups = None if self.groups is None else tuple(self.groups[p] for p in positions)
        targets = None if self.targets is None else self.targets[positions]
        return MetricColumn(self.rows[positions], self.kind, self.values[positions], targets, groups)


@dataclass(frozen=True)
class ItemColumns:
    """The items of one evaluation: their ids and folds (None: no fold) in file order, and each metric (or why a
    metric's stats could not be read: the others stay usable)."""

    ids: tuple[str, ...]
    folds: tuple[str | None, ...]
    metrics: dict[str, MetricColumn]
    errors: dict[str, str] = field(default_factory=dict)

    def metric_ids(self, metric: str) -> list[str]:
        """The ids of the items that carry ``metric``, in file order (repeats kept)."""
        column = self.metrics.get(metric)
        return [] if column is None else [self.ids[r] for r in column.rows.tolist()]


def columns_of(items: Sequence[Mapping[str, Any]]) -> ItemColumns:
    """Items as stored (``{"id", "stats": {metric: ...}[, "fold"]}``) as columns; KeyError, TypeError or
    ValueError for items that are malformed (a metric's malformed stats are kept as its error instead)."""
    ids = tuple(str(it["id"]) for it in items)
    folds = tuple(str(it["fold"]) if "fold" in it else None for it in items)
    found: dict[str, tuple[list[int], list[Any]]] = {}
    for row, it in enumerate(items):
        for metric, value in (it.get("stats") or {}).items():
            rows, values = found.setdefault(metric, ([], []))
            rows.append(row)
            values.append(value)
    metrics, errors = {}, {}
    for metric, (rows, values) in found.items():
        try:
            metrics[metric] = _column(np.asarray(rows, dtype=np.int64), values)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            errors[metric] = f"{type(exc).__name__}: {exc}"
    return ItemColumns(ids, folds, metrics, errors)


def _column(rows: np.ndarray, values: list[Any]) -> MetricColumn:
    first = values[0]
    if isinstance(first, Mapping) and "score" in first:
        groups = tuple(str(v["group"]) for v in values) if "group" in first else None
        return MetricColumn(rows, "trial", np.array([float(v["score"]) for v in values]),
                            np.array([int(v["target"]) for v in values], dtype=np.int64), groups)
    if isinstance(first, Mapping) and "gains" in first:
        gains = np.array([v["gains"] for v in values], dtype=float)
        if gains.ndim != 2:
            raise ValueError("queries keep gains at different numbers of thresholds")
        return MetricColumn(rows, "gains", gains)
    pairs = np.array(values, dtype=float)
    if pairs.ndim != 2 or pairs.shape[1] < 2:
        raise ValueError("a ratio's items must each be [num, den]")
    return MetricColumn(rows, "pair", pairs[:, :2])


def read_columns(path: Path) -> ItemColumns:
    """``items.jsonl`` as columns: from its binary copy where that is current, else parsed (and the copy
    written). OSError, UnicodeDecodeError or ``json.JSONDecodeError`` where the file cannot be read;
    KeyError, TypeError or ValueError where its items are malformed."""
    path = Path(path)
    source = path.stat()
    stamp = np.array([VERSION, source.st_size, source.st_mtime_ns], dtype=np.int64)
    copy = path.with_name(path.name + SUFFIX)
    try:
        return _load(copy, stamp)
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        pass  # none yet, stale, or damaged: parse the file again
    columns = columns_of(read_json_lines(path))
    try:
        _save(copy, stamp, columns)
    except OSError:
        pass  # a read-only folder: read without the copy
    return columns


def _save(copy: Path, stamp: np.ndarray, columns: ItemColumns) -> None:
    arrays: dict[str, np.ndarray] = {"stamp": stamp, "ids": np.array(columns.ids, dtype=str),
                                     "folds": np.array([f or "" for f in columns.folds], dtype=str),
                                     "has_fold": np.array([f is not None for f in columns.folds], dtype=bool),
                                     "metrics": np.array(list(columns.metrics), dtype=str),
                                     "errors": np.array([[m, e] for m, e in columns.errors.items()], dtype=str)}
    for i, column in enumerate(columns.metrics.values()):
        arrays.update({f"{i}.rows": column.rows, f"{i}.kind": np.array(column.kind), f"{i}.values": column.values})
        if column.targets is not None:
            arrays[f"{i}.targets"] = column.targets
        if column.groups is not None:
            arrays[f"{i}.groups"] = np.array(column.groups, dtype=str)
    partial = copy.with_name(f".{copy.name}.{os.getpid()}.tmp")
    try:
        with open(partial, "wb") as handle:
            np.savez(handle, **arrays)
        os.replace(partial, copy)  # whole or not at all, also for a reader beside this one
    finally:
        partial.unlink(missing_ok=True)


def _load(copy: Path, stamp: np.ndarray) -> ItemColumns:
    with np.load(copy, allow_pickle=False) as stored:
        if not np.array_equal(stored["stamp"], stamp):
            raise ValueError("written from another version of the file")
        has_fold = stored["has_fold"].tolist()
        folds = tuple(f if has else None for f, has in zip(stored["folds"].tolist(), has_fold, strict=True))
        metrics = {}
        for i, name in enumerate(stored["metrics"].tolist()):
            groups = tuple(stored[f"{i}.groups"].tolist()) if f"{i}.groups" in stored.files else None
            targets = stored[f"{i}.targets"] if f"{i}.targets" in stored.files else None
            metrics[name] = MetricColumn(stored[f"{i}.rows"], str(stored[f"{i}.kind"]), stored[f"{i}.values"],
                                         targets, groups)
        errors = {m: e for m, e in stored["errors"].reshape(-1, 2).tolist()}
        return ItemColumns(tuple(stored["ids"].tolist()), folds, metrics, errors)


def aligned(per_seed: Mapping[int, ItemColumns], metric: str) -> tuple[tuple[str, ...], list[MetricColumn | None]]:
    """The ids of the items that carry ``metric`` in every seed (in the first seed's order; an id repeated in a
    file counts once, at its last line's stats) and each seed's column at those ids (None: the metric is missing
    from a seed, and no item is shared); ValueError where a seed's stats of ``metric`` are malformed."""
    errors = [c.errors[metric] for c in per_seed.values() if metric in c.errors]
    if errors:
        raise ValueError(errors[0])
    columns = [c.metrics.get(metric) for c in per_seed.values()]
    if any(c is None for c in columns):
        return (), [None] * len(columns)
    present = [c.metric_ids(metric) for c in per_seed.values()]
    if all(p == present[0] for p in present) and len(set(present[0])) == len(present[0]):
        return tuple(present[0]), columns  # the common case: every seed on the same items in the same order
    positions = [{i: k for k, i in enumerate(p)} for p in present]
    shared = set(positions[0]).intersection(*positions[1:])
    ids = tuple(i for i in positions[0] if i in shared)
    taken = [c.take(np.array([pos[i] for i in ids], dtype=np.int64)) for c, pos in zip(columns, positions, strict=True)]
    return ids, taken
