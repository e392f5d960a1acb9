"""What corpus plugins share: the local-corpus base (read the splits, check their audio, write the
prepared corpus), writing a prepared corpus, vocabularies, ABX item files, expected files and
deterministic splits.

See :mod:`harness.core.manifest` for the layout written here.
"""

from __future__ import annotations

import hashlib
import logging
import os
from abc import abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import Field

from harness.core.errors import CorpusError
from harness.core.interfaces import CorpusPlugin, InputPath, PluginParams
from harness.core.manifest import write_json, write_jsonl
from harness.core.params import input_paths, with_absolute_inputs
from harness.core.stage import StageContext
from harness.data import audio
from harness.data.phones import SIL

log = logging.getLogger("harness.corpora")

#: manifest fields that are labels (``label_fields`` in meta.json lists those present)
LABEL_FIELDS = ("speaker", "text", "phones", "emotion", "fold", "intent", "slots", "tags", "keyword", "occurs_in",
                "turns")
#: label field -> vocabulary key in vocab.json
VOCAB_KEYS = {"phones": "phones", "speaker": "speakers", "emotion": "emotions", "intent": "intents",
              "slots": "slot_types", "tags": "tags", "keyword": "keywords"}  # fmt: skip

ABX_HEADER = "#file onset offset #phone prev-phone next-phone speaker"


def require(path: Path, corpus: str, what: str = "") -> Path:
    """``path`` if it exists, else one sentence naming the file the distribution should have (and the
    folder to use as root when the given one is a level above the distribution)."""
    if not path.exists():
        hint = f" ({what})" if what else ""
        nested = nested_root(path)
        fix = (f"{nested.parent} looks like the folder above the distribution: point root at {nested}"
               if nested is not None else "point root at the unpacked distribution")
        raise CorpusError(f"{corpus}: expected {path}{hint} but it is missing; {fix}.")
    return path


def nested_root(path: Path) -> Path | None:
    """The sub-folder ``D`` of ``path``'s nearest existing ancestor ``A`` for which ``D / (path - A)`` exists:
    the root the user meant when they gave ``A`` (a folder one level above the distribution)."""
    ancestor = next((a for a in Path(path).parents if a.is_dir()), None)
    if ancestor is None:
        return None
    relative = Path(path).relative_to(ancestor)
    try:
        children = sorted(c for c in ancestor.iterdir() if c.is_dir())
    except OSError:
        return None
    return next((c for c in children if (c / relative).exists()), None)


def stable_fraction(key: str, seed: int = 0) -> float:
    """A number in [0, 1) fixed by ``key`` and ``seed`` (for splits that do not depend on order)."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def vocabularies(rows: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    """Sorted label vocabularies over ``rows`` (phones, speakers, emotions, intents, slot types, tags)."""
    seen: dict[str, set[str]] = {}
    for row in rows:
        for field, key in VOCAB_KEYS.items():
            if field not in row or row[field] is None:
                continue
            value = row[field]
            bucket = seen.setdefault(key, set())
            if field == "phones":
                bucket.update(p[0] for p in value)
            elif field == "slots":
                bucket.update(s[0] for s in value)
            elif field == "tags":
                bucket.update(value)
            elif isinstance(value, list):  # an intent of several slots
                bucket.add(" / ".join(str(v) for v in value))
            else:
                bucket.add(str(value))
    return {k: sorted(v) for k, v in sorted(seen.items())}


def write_prepared(
    out_dir: Path,
    corpus: str,
    splits: dict[str, list[dict[str, Any]]],
    *,
    vocab: dict[str, list[str]] | None = None,
    task_splits: dict[str, dict[str, str]] | None = None,
    extra_meta: dict[str, Any] | None = None,
) -> None:
    """Write ``<split>.jsonl``, ``vocab.json`` and ``meta.json`` (rows sorted by id within a split).

    ``vocab`` entries override the ones computed from the rows (say, a fixed phone inventory).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    all_rows: list[dict[str, Any]] = []
    for name, rows in splits.items():
        if not rows:
            raise CorpusError(f"{corpus}: split {name!r} came out empty; check the corpus root and the parameters.")
        rows = sorted(rows, key=lambda r: r["id"])
        ids = [r["id"] for r in rows]
        if len(set(ids)) != len(ids):
            raise CorpusError(f"{corpus}: split {name!r} has repeated utterance ids; the corpus root is inconsistent.")
        write_jsonl(out_dir / f"{name}.jsonl", rows)
        all_rows.extend(rows)
    vocab = {**vocabularies(all_rows), **(vocab or {})}
    label_fields = sorted({f for r in all_rows for f in LABEL_FIELDS if r.get(f) is not None})
    meta: dict[str, Any] = {
        "corpus": corpus,
        "splits": list(splits),
        "label_fields": label_fields,
        "task_splits": task_splits or {},
        "sample_rate": audio.SAMPLE_RATE,
        "n_utterances": {k: len(v) for k, v in splits.items()},
        "hours": {k: round(sum(float(r.get("duration", 0.0)) for r in v) / 3600, 4) for k, v in splits.items()},
    }
    meta.update(extra_meta or {})
    write_json(out_dir / "vocab.json", vocab)
    write_json(out_dir / "meta.json", meta)
    log.info("%s: wrote %s", corpus, ", ".join(f"{k} ({len(v)})" for k, v in splits.items()))


def abx_items(rows: Iterable[dict[str, Any]], min_duration: float = 0.0) -> list[str]:
    """libri-light ABX item lines (``#file onset offset #phone prev-phone next-phone speaker``) from
    phone alignments: one item per non-silence phone with its neighbours as context; ``#file`` is
    the utterance id, onset and offset are the phone's times in seconds."""
    lines = [ABX_HEADER]
    for row in sorted(rows, key=lambda r: r["id"]):
        phones = row.get("phones") or []
        for k in range(1, len(phones) - 1):
            phone, onset, offset = phones[k]
            prev, nxt = phones[k - 1][0], phones[k + 1][0]
            if SIL in (phone, prev, nxt) or offset - onset < min_duration:
                continue
            lines.append(f"{row['id']} {onset:.4f} {offset:.4f} {phone} {prev} {nxt} {row['speaker']}")
    return lines


def write_abx_items(path: Path, rows: Iterable[dict[str, Any]], min_duration: float = 0.0) -> int:
    """Write an item file; return the number of items."""
    lines = abx_items(rows, min_duration)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines) - 1


def checked(
    rows: list[dict[str, Any]], root: Path, corpus: str, level: audio.CheckLevel = "full", skip_bad: bool = False
) -> list[dict[str, Any]]:
    """The rows whose audio passes :func:`harness.data.audio.check_files` (durations filled from headers)."""
    return audio.check_rows(rows, root, level=level, skip_bad=skip_bad, what=f"{corpus} audio files")


class LocalCorpusParams(PluginParams):
    """Parameters every corpus read from a local root has."""

    root: InputPath = Field(description="the unpacked distribution")
    audio_check: audio.CheckLevel = Field(
        "full", description="full: decode every file; header: header checks only (faster); none"
    )
    skip_bad: bool = Field(False, description="leave bad audio files out (with a logged count) instead of stopping")


@dataclass
class CorpusRows:
    """What a corpus read or generated: the rows of each split (in split order) and what the
    prepared corpus adds to them. See :func:`write_prepared` for ``vocab``, ``task_splits`` and
    ``extra_meta``; an ABX item file ``<split>.item`` is written for each of ``abx_splits``, over the
    rows of that split and of the splits ``abx_extra_splits`` names for it."""

    splits: dict[str, list[dict[str, Any]]]
    vocab: dict[str, list[str]] | None = None
    task_splits: dict[str, dict[str, str]] | None = None
    extra_meta: dict[str, Any] | None = None
    abx_splits: tuple[str, ...] = ()
    abx_extra_splits: dict[str, tuple[str, ...]] = dataclass_field(default_factory=dict)

    def abx_rows(self, split: str) -> list[dict[str, Any]]:
        """The rows the item file of ``split`` covers."""
        return [r for s in (split, *self.abx_extra_splits.get(split, ())) for r in self.splits[s]]


def write_corpus(out_dir: Path, corpus: str, found: CorpusRows) -> None:
    """Write the ABX item files of ``found.abx_splits`` (named in ``meta.json`` with their item
    counts), then the prepared corpus (:func:`write_prepared`)."""
    extra_meta = dict(found.extra_meta or {})
    if found.abx_splits:
        extra_meta["abx_items"] = {split: f"{split}.item" for split in found.abx_splits}
        extra_meta["abx_item_counts"] = {
            split: write_abx_items(out_dir / f"{split}.item", found.abx_rows(split)) for split in found.abx_splits
        }
    write_prepared(out_dir, corpus, found.splits, vocab=found.vocab, task_splits=found.task_splits,
                   extra_meta=extra_meta)  # fmt: skip


LP = TypeVar("LP", bound=LocalCorpusParams)


class LocalCorpus(CorpusPlugin[LP]):
    """A corpus read from a local root: :meth:`read_splits` gives the rows of each split; ``prepare``
    checks their audio at ``audio_check`` (bad files stop it, or with ``skip_bad`` are left out with a
    logged count), fills durations from the headers and writes the prepared corpus."""

    @abstractmethod
    def read_splits(self, params: LP, out_dir: Path) -> CorpusRows:
        """The rows of every split, read from ``params.root`` (an absolute path by then; row paths
        absolute or relative to ``out_dir``)."""

    def check_split(self, rows: list[dict[str, Any]], out_dir: Path, params: LP) -> list[dict[str, Any]]:
        """The rows of one split whose audio passes the checks."""
        return checked(rows, out_dir, self.name, params.audio_check, params.skip_bad)

    def derive_splits(self, found: CorpusRows, params: LP) -> CorpusRows:
        """Splits made from the checked rows, whose durations are known by then (subsets of so many
        hours, held-out parts); none by default."""
        return found

    def prepare(self, params: LP, out_dir: Path, ctx: StageContext) -> None:
        params = with_absolute_inputs(params)  # a relative root is read from the working directory
        found = self.read_splits(params, out_dir)
        roots = [path for path in input_paths(params).values() if path.is_dir()]
        check_inside_root(found.splits, roots, out_dir, self.name)
        found.splits = {split: self.check_split(rows, out_dir, params) for split, rows in found.splits.items()}
        write_corpus(out_dir, self.name, self.derive_splits(found, params))


def check_inside_root(
    splits: dict[str, list[dict[str, Any]]], roots: Sequence[Path], out_dir: Path, corpus: str
) -> None:
    """Refuse rows whose audio lies outside the corpus's input folders (``root``, and any other folder
    its parameters name, such as a separate test set) and the prepared folder: a split list naming
    ``../../elsewhere/x.wav`` or an absolute path. Checked on the paths as written (``..`` removed, links
    not followed), so a root whose audio folders are symbolic links stays usable."""
    bases = [os.path.normpath(os.path.abspath(b)) for b in (*roots, out_dir)]
    root = " or ".join(str(r) for r in roots)
    for split, rows in splits.items():
        for row in rows:
            given = str(row["path"])
            path = os.path.normpath(os.path.join(os.path.abspath(out_dir), given))
            if not any(path == b or path.startswith(b.rstrip(os.sep) + os.sep) for b in bases):
                raise CorpusError(
                    f"{corpus}: split {split!r} names {given}, which lies outside the corpus root {root}; "
                    "a split list may only name files under the root, so fix that entry."
                )


def split_by_speaker(speakers: Iterable[str], dev: float, test: float, seed: int = 0) -> dict[str, str]:
    """Speaker -> split (train/dev/test) ordered by a stable hash, so held-out speakers stay held out;
    with three or more speakers every split gets at least one."""
    ranked = sorted(set(speakers), key=lambda s: (stable_fraction(s, seed), s))
    n = len(ranked)
    n_test = max(1, round(n * test)) if n >= 3 else 0
    n_dev = max(1, round(n * dev)) if n >= 3 else 0
    return {s: "test" if i < n_test else "dev" if i < n_test + n_dev else "train" for i, s in enumerate(ranked)}


def sample_hours(
    rows: Sequence[dict[str, Any]], hours: float, seed: int = 0, keep_speakers: bool = False
) -> list[dict[str, Any]]:
    """A random subset of ``rows`` (each with ``duration``) of at most ``hours`` hours, in the rows' order.

    Rows are drawn in an order fixed by ``seed`` and a hash of their ids (so the same rows give the same
    subset in any order) until the next would pass the budget. ``keep_speakers`` first takes one row of
    every speaker, so the subset keeps them all (as the Speech-FT paper's 10-hour SID set does).
    """
    order = sorted(range(len(rows)), key=lambda i: (stable_fraction(str(rows[i]["id"]), seed), i))
    budget, total, chosen = hours * 3600.0, 0.0, set()
    if keep_speakers:
        first = {}
        for i in order:
            first.setdefault(rows[i].get("speaker"), i)
        chosen = set(first.values())
        total = sum(float(rows[i]["duration"]) for i in chosen)
    for i in order:
        if i in chosen:
            continue
        if total + float(rows[i]["duration"]) > budget:
            break
        chosen.add(i)
        total += float(rows[i]["duration"])
    return [row for i, row in enumerate(rows) if i in chosen]


def normalise_text(text: str) -> str:
    """Lower case, punctuation other than apostrophes removed, single spaces."""
    kept = "".join(ch if ch.isalnum() or ch in " '" else " " for ch in text.lower())
    return " ".join(kept.split())
