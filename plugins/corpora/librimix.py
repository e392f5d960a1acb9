"""Libri2Mix speaker diarization (SUPERB SD) from the Kaldi-style folders SUPERB's recipe prepares.

Layout (``root`` holds one folder per split, as ``scripts/prepare_diarization.py`` of the LibriMix fork
SUPERB uses writes them)::

    root/<split>/wav.scp     "<recording> <mixture wav>"     e.g. "103-1240-0003_1034-121119-0042 /data/...wav"
    root/<split>/segments    "<utterance> <recording> <start> <end>"   (seconds)
    root/<split>/utt2spk     "<utterance> <speaker>"

with ``<split>`` ``train``, ``dev`` and ``test``. A recording's ``turns`` are its segments, each labelled
with its utterance's speaker. ``wav.scp`` paths are absolute or relative to ``audio_root`` (default:
``root``); the mixtures usually lie in the Libri2Mix folder, so point ``audio_root`` at it, since only
files under ``root`` or ``audio_root`` are read. Durations come from the audio headers (s3prl reads
``reco2dur``, written from the same files).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from harness import hookimpl
from harness.api import CorpusError, CorpusRows, InputPath, LocalCorpus, LocalCorpusParams, require

NAME = "librimix"
SPLITS = ("train", "dev", "test")


class LibriMixParams(LocalCorpusParams):
    audio_root: InputPath | None = Field(None, description="the folder wav.scp's paths lie under (default: root)")


def read_table(path: Path, fields: int) -> list[list[str]]:
    """The non-empty lines of a Kaldi table, split in ``fields`` columns (the last one takes the rest)."""
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(None, fields - 1)
        if len(parts) < fields:
            raise CorpusError(f"{NAME}: {path} line {n} has {len(parts)} fields where {fields} are expected.")
        rows.append(parts)
    return rows


def read_split(folder: Path, audio_root: Path) -> list[dict]:
    """One recording row per ``wav.scp`` line, with its ``turns``."""
    speaker_of = dict(read_table(require(folder / "utt2spk", NAME, "utterance speakers"), 2))
    turns: dict[str, list[list]] = {}
    for n, (utt, rec, start, end) in enumerate(read_table(require(folder / "segments", NAME, "speech segments"), 4), 1):
        if utt not in speaker_of:
            raise CorpusError(f"{NAME}: {folder / 'segments'} line {n} names utterance {utt!r}, which utt2spk lacks.")
        try:
            begin, finish = float(start), float(end)
        except ValueError:
            raise CorpusError(f"{NAME}: {folder / 'segments'} line {n} has a start or end that is not a number.") \
                from None
        if not 0 <= begin < finish:
            raise CorpusError(f"{NAME}: {folder / 'segments'} line {n} runs from {start} to {end}; a segment starts "
                              "at 0 or later and ends after it starts.")
        turns.setdefault(rec, []).append([speaker_of[utt], begin, finish])
    rows = []
    for rec, where in read_table(require(folder / "wav.scp", NAME, "recording paths"), 2):
        where = where.strip()
        if where.endswith("|"):
            raise CorpusError(f"{NAME}: {folder / 'wav.scp'} gives recording {rec!r} as a command; write the "
                              "mixtures to files and list their paths.")
        path = Path(where) if Path(where).is_absolute() else audio_root / where
        rows.append({"id": rec, "path": str(path), "turns": sorted(turns.get(rec, []), key=lambda t: (t[1], t[0]))})
    return rows


class LibriMix(LocalCorpus[LibriMixParams]):
    name = NAME
    version = "1"
    summary = "Libri2Mix diarization folders (wav.scp, segments, utt2spk per split): two-speaker speech turns"
    Params = LibriMixParams

    def provided_labels(self, params: LibriMixParams) -> tuple[str, ...]:
        return ("turns",)

    def read_splits(self, params: LibriMixParams, out_dir: Path) -> CorpusRows:
        root = Path(params.root)
        audio_root = Path(params.audio_root) if params.audio_root is not None else root
        splits = {split: read_split(require(root / split, NAME, f"the {split} folder"), audio_root)
                  for split in SPLITS}
        if params.audio_root is None:
            outside = next((r["path"] for rows in splits.values() for r in rows
                            if not Path(r["path"]).is_relative_to(root)), None)
            if outside is not None:
                raise CorpusError(f"{NAME}: wav.scp lists {outside}, outside root {root}; set audio_root to the "
                                  "folder that holds the mixtures (the Libri2Mix folder).")
        return CorpusRows(splits)


@hookimpl
def harness_register_corpus(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(LibriMix)
