"""Common Voice (one language of a Mozilla release) from its distribution layout: the paper's Chinese ASR
evaluation is its zh-CN part.

Layout (``root`` is the language folder, e.g. ``cv-corpus-17.0-2024-03-15/zh-CN``)::

    train.tsv  dev.tsv  test.tsv     client_id<TAB>path<TAB>sentence<TAB>... (a header line first)
    clips/common_voice_zh-CN_18531536.mp3

The official splits are used as they are; the speaker is the ``client_id``. The text is the sentence with
its punctuation removed (``keep_punctuation: false``, the default) and spaces normalised, so that the
character error rate counts what was said. The MP3 clips are decoded by libsndfile and resampled to 16 kHz.
"""

from __future__ import annotations

import csv
import unicodedata
from pathlib import Path

from pydantic import Field

from harness import hookimpl
from harness.api import CorpusError, CorpusRows, LocalCorpus, LocalCorpusParams, require

NAME = "common_voice"
SPLITS = ("train", "dev", "test")
#: the columns every release's split files have
COLUMNS = ("client_id", "path", "sentence")


class CommonVoiceParams(LocalCorpusParams):
    keep_punctuation: bool = Field(False, description="keep the sentences' punctuation in the text")


def normalise(sentence: str, keep_punctuation: bool = False) -> str:
    """The sentence without punctuation (Unicode category P), its whitespace collapsed to single spaces."""
    if not keep_punctuation:
        sentence = "".join(" " if unicodedata.category(c).startswith("P") else c for c in sentence)
    return " ".join(sentence.split())


def read_split(root: Path, split: str, keep_punctuation: bool) -> list[dict]:
    table = require(root / f"{split}.tsv", NAME, f"the {split} split")
    rows = []
    with open(table, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise CorpusError(f"{table} lacks the column{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
                              "point root at a Common Voice language folder (train.tsv, dev.tsv, test.tsv, clips/).")
        for n, record in enumerate(reader, 2):
            text = normalise(record["sentence"] or "", keep_punctuation)
            if not record["path"] or not text:
                raise CorpusError(f"{table} line {n} has no clip or no sentence.")
            clip = require(root / "clips" / record["path"], NAME, f"the audio of line {n} of {table.name}")
            rows.append({"id": Path(record["path"]).stem, "path": str(clip), "speaker": record["client_id"],
                         "text": text})
    return rows


class CommonVoice(LocalCorpus[CommonVoiceParams]):
    name = NAME
    version = "1"
    summary = "Common Voice (one language): text without punctuation, speakers; official splits"
    Params = CommonVoiceParams

    def provided_labels(self, params: CommonVoiceParams) -> tuple[str, ...]:
        return ("speaker", "text")

    def read_splits(self, params: CommonVoiceParams, out_dir: Path) -> CorpusRows:
        root = Path(params.root)
        return CorpusRows({split: read_split(root, split, params.keep_punctuation) for split in SPLITS})


@hookimpl
def harness_register_corpus(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(CommonVoice)
