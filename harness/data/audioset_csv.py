"""AudioSet's own files: segment CSVs, the class index, the ontology; and the rows of a corpus from them.

The real ``audioset`` corpus and the embedded ``synthetic_nonspeech`` one both go through
:func:`audioset_rows`, so the embedded corpus exercises the real reader.

Segments file (``balanced_train_segments.csv``, ``eval_segments.csv``, ...)::

    # Segments csv created Sun Mar  5 10:54:31 2017
    # num_ytids=20371, num_segs=20371, num_unique_labels=527, num_positive_labels=51804
    # YTID, start_seconds, end_seconds, positive_labels
    --PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"

Class index (``class_labels_indices.csv``)::

    index,mid,display_name
    0,/m/09x0r,"Speech"

Audio of a segment is looked up in the segment file's audio folder under the names the common
download tools use: ``<YTID>.<ext>``, ``Y<YTID>.<ext>`` or ``<YTID>_<start>.<ext>`` (start in
seconds as written in the CSV, or in integer milliseconds).
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import CorpusError
from harness.data.corpus import CorpusRows, stable_fraction

log = logging.getLogger("harness.corpora.audioset")

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".opus")


@dataclass(frozen=True)
class Segment:
    ytid: str
    start: float
    end: float
    labels: tuple[str, ...]  # class MIDs
    start_text: str = ""  # the start as written in the CSV

    @property
    def id(self) -> str:
        return f"{self.ytid}_{int(round(self.start * 1000))}"


@dataclass(frozen=True)
class AudioClass:
    index: int
    mid: str
    name: str


def read_segments(path: Path) -> list[Segment]:
    """Rows of a segments CSV (comment lines skipped; labels split on commas)."""
    out = []
    with open(path, newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.reader(f, skipinitialspace=True), 1):
            if not row or row[0].startswith("#"):
                continue
            if len(row) < 4:
                raise CorpusError(f"{path} line {n} has {len(row)} fields, expected YTID, start, end, labels.")
            try:
                start, end = float(row[1]), float(row[2])
            except ValueError:
                raise CorpusError(
                    f"{path} line {n}: start and end must be seconds (got {row[1]!r}, {row[2]!r})."
                ) from None
            labels = tuple(x.strip() for x in ",".join(row[3:]).split(",") if x.strip())
            out.append(Segment(row[0].strip(), start, end, labels, row[1].strip()))
    return out


def write_segments(path: Path, segments: Iterable[Segment]) -> None:
    """A segments CSV in AudioSet's layout (header comments included)."""
    segments = list(segments)
    labels = Counter(m for s in segments for m in s.labels)
    lines = [
        "# Segments csv",
        f"# num_ytids={len({s.ytid for s in segments})}, num_segs={len(segments)}, "
        f"num_unique_labels={len(labels)}, num_positive_labels={sum(labels.values())}",
        "# YTID, start_seconds, end_seconds, positive_labels",
    ]
    lines += [f'{s.ytid}, {s.start:.3f}, {s.end:.3f}, "{",".join(s.labels)}"' for s in segments]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_class_index(path: Path) -> list[AudioClass]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"index", "mid", "display_name"} <= set(reader.fieldnames):
            raise CorpusError(f"{path} does not have the columns index,mid,display_name of class_labels_indices.csv.")
        return [AudioClass(int(r["index"]), r["mid"], r["display_name"]) for r in reader]


def write_class_index(path: Path, classes: Iterable[AudioClass]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        writer.writerow(["index", "mid", "display_name"])
        for c in classes:
            writer.writerow([c.index, c.mid, c.name])


def read_ontology(path: Path) -> dict[str, dict[str, Any]]:
    """``ontology.json`` (a list of nodes with ``id``, ``name``, ``child_ids``) by MID."""
    nodes = json.loads(path.read_text(encoding="utf-8"))
    return {n["id"]: n for n in nodes}


def subtree(ontology: dict[str, dict[str, Any]], names: Iterable[str]) -> set[str]:
    """MIDs of the named classes (display names or MIDs) and of everything below them."""
    by_name = {n["name"].lower(): mid for mid, n in ontology.items()}
    todo = []
    for name in names:
        mid = name if name in ontology else by_name.get(name.lower())
        if mid is None:
            raise CorpusError(f"the AudioSet ontology has no class {name!r}; use a display name from ontology.json.")
        todo.append(mid)
    seen: set[str] = set()
    while todo:
        mid = todo.pop()
        if mid not in seen:
            seen.add(mid)
            todo.extend(ontology.get(mid, {}).get("child_ids", []))
    return seen


class AudioIndex:
    """Finds the file of a segment in one audio folder (listed once, recursively)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._by_stem: dict[str, Path] = {}
        if folder.is_dir():
            for p in sorted(folder.rglob("*")):
                if p.suffix.lower() in AUDIO_EXTENSIONS:
                    self._by_stem.setdefault(p.stem, p)

    def find(self, seg: Segment) -> Path | None:
        ms = int(round(seg.start * 1000))
        for stem in (seg.ytid, f"Y{seg.ytid}", f"{seg.ytid}_{seg.start_text}", f"{seg.ytid}_{ms}",
                     f"Y{seg.ytid}_{seg.start_text}"):  # fmt: skip
            if stem in self._by_stem:
                return self._by_stem[stem]
        return None


def audioset_rows(
    out_dir: Path,
    corpus: str,
    splits: dict[str, tuple[list[Segment], Path]],
    classes: list[AudioClass],
    *,
    exclude: set[str] = frozenset(),  # type: ignore[assignment]
    keep: set[str] | None = None,
    max_classes: int | None = None,
    min_clips: int = 1,
    skip_missing: bool = True,
    extra_meta: dict[str, Any] | None = None,
) -> CorpusRows:
    """The rows (id, path, tags as display names) of ``splits`` (split -> (segments, audio folder)),
    the ``tags`` vocabulary and ``n_classes``; paths under ``out_dir`` are written relative to it.

    Clips with any label in ``exclude`` (MIDs) are dropped; the kept classes are those with at
    least ``min_clips`` training clips (the ``max_classes`` most frequent, if set); clips left with
    no kept label are dropped. ``keep`` (MIDs) fixes the kept classes instead. Missing audio is
    skipped with a logged count (``skip_missing``) or is an error naming the first missing clip.
    """
    names = {c.mid: c.name for c in classes}
    kept_segments: dict[str, list[Segment]] = {
        split: [s for s in segs if not (set(s.labels) & exclude)] for split, (segs, _) in splits.items()
    }
    first = next(iter(kept_segments))
    counts = Counter(m for s in kept_segments[first] for m in s.labels if m in names and m not in exclude)
    ranked = sorted((m for m, c in counts.items() if c >= min_clips), key=lambda m: (-counts[m], names[m]))
    if keep is None:
        keep = set(ranked[:max_classes] if max_classes else ranked)
    if not keep:
        raise CorpusError(f"{corpus}: no class has {min_clips} or more clips in split {first!r}; lower min_clips.")
    rows_by_split: dict[str, list[dict[str, Any]]] = {}
    for split, segs in kept_segments.items():
        index = AudioIndex(splits[split][1])
        rows, missing = [], []
        for seg in segs:
            tags = sorted({names[m] for m in seg.labels if m in keep})
            if not tags:
                continue
            path = index.find(seg)
            if path is None:
                missing.append(seg)
                continue
            rel = path.relative_to(out_dir) if path.is_relative_to(out_dir) else path
            rows.append({"id": seg.id, "path": rel.as_posix() if not rel.is_absolute() else str(rel), "tags": tags})
        if missing:
            where = index.folder / f"{missing[0].ytid}.wav"
            if not skip_missing:
                raise CorpusError(
                    f"{corpus}: {len(missing)} {split} clips have no audio file (the first would be {where}); "
                    f"add them or set skip_missing: true."
                )
            log.warning("%s: skipped %d %s clips without an audio file (e.g. %s).", corpus, len(missing), split, where)
        rows_by_split[split] = rows
    return CorpusRows(
        rows_by_split,
        vocab={"tags": sorted(names[m] for m in keep)},
        extra_meta={"n_classes": len(keep), **(extra_meta or {})},
    )


def carve_dev(segments: list[Segment], fraction: float, seed: int = 0) -> tuple[list[Segment], list[Segment]]:
    """Split ``segments`` into (train, dev) by a stable hash of each clip id."""
    train = [s for s in segments if stable_fraction(s.id, seed) >= fraction]
    dev = [s for s in segments if stable_fraction(s.id, seed) < fraction]
    return train, dev
