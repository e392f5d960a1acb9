"""Prepared corpora: per-split JSON-lines manifests, label vocabularies and metadata.

Layout of a prepared corpus folder::

    <dir>/<split>.jsonl   one utterance per line
    <dir>/vocab.json      label vocabularies, e.g. {"phones": [...], "speakers": [...], "emotions": [...]}
    <dir>/meta.json       {"corpus": name, "splits": [...], "task_splits": {task: {role: split}}, ...}

An utterance row has ``id``, ``path`` (absolute, or relative to the corpus folder), ``duration``
(seconds), ``speaker``, and whatever labels the corpus has:

- ``text``: the transcription (str)
- ``phones``: ``[[phone, start_s, end_s], ...]`` contiguous, inside the utterance
- ``emotion``: a class name; ``fold``: an int for corpora evaluated by folds
- ``intent`` and ``slots``: ``[[slot_type, value], ...]``; ``sf_text``: the SUPERB slot-filling
  target string with slot markers
- ``tags``: list of audio class names (multi-label)
- ``start`` and ``end`` (seconds) for segments of a longer file (TED-LIUM): read rows with
  :func:`harness.data.audio.load_utterance`, never ``load(row["path"])``

Corpora without alignments (LibriSpeech) give phones as ``[phone, null, null]`` and say
``"phone_times": false`` in meta.json.

``task_splits`` lets a corpus say which split plays which role for a task (Audio SNIPS tests slot
filling on held-out voices, for example): ``{"sf": {"train": "train", "dev": "dev", "test": "test_unseen"}}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

from harness.core.errors import CorpusError

DEFAULT_ROLES = {"train": "train", "dev": "dev", "test": "test"}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write rows as JSON lines (sorted keys, so identical rows give identical bytes)."""
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def write_json(path: Path, data: Any) -> None:
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


class PreparedCorpus:
    """Read access to a prepared corpus folder."""

    def __init__(self, root: Path):
        self.root = Path(root)
        if not (self.root / "meta.json").is_file():
            raise CorpusError(f"{self.root} is not a prepared corpus (no meta.json); run `harness prepare` first.")

    @cached_property
    def meta(self) -> dict[str, Any]:
        return json.loads((self.root / "meta.json").read_text(encoding="utf-8"))

    @cached_property
    def vocab(self) -> dict[str, list[str]]:
        path = self.root / "vocab.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    @property
    def name(self) -> str:
        return self.meta.get("corpus", self.root.name)

    @property
    def splits(self) -> list[str]:
        return list(self.meta.get("splits", []))

    def split_for(self, task: str, role: str) -> str:
        """The split playing ``role`` (train/dev/test) for ``task``."""
        return self.meta.get("task_splits", {}).get(task, {}).get(role, DEFAULT_ROLES.get(role, role))

    def utterances(self, split: str) -> list[dict[str, Any]]:
        """The rows of ``split`` with ``path`` made absolute."""
        path = self.root / f"{split}.jsonl"
        if not path.is_file():
            raise CorpusError(
                f"corpus {self.name!r} has no split {split!r} (have: {', '.join(self.splits) or 'none'})."
            )
        rows = list(read_jsonl(path))
        for row in rows:
            p = Path(row["path"])
            row["path"] = str(p if p.is_absolute() else self.root / p)
        return rows

    def require(self, fields: tuple[str, ...], who: str) -> None:
        """Fail with one sentence when the corpus lacks labels a task needs."""
        have = set(self.meta.get("label_fields", []))
        missing = [f for f in fields if f not in have]
        if missing:
            raise CorpusError(
                f"{who} needs the label(s) {', '.join(missing)} but corpus {self.name!r} has only "
                f"{', '.join(sorted(have)) or 'none'}; pick a corpus that has them."
            )
