"""Fluent Speech Commands intent classification (SUPERB IC) from its distribution layout.

Layout (``root`` holds ``data`` and ``wavs``)::

    data/train_data.csv, data/valid_data.csv, data/test_data.csv
        ",path,speakerId,transcription,action,object,location"
        "0,wavs/speakers/2BqVo8kVB2Skwgyb/0a3129c0-....wav,2BqVo8kVB2Skwgyb,Change language,change language,none,none"
    wavs/speakers/<speaker>/<utterance>.wav

Rows: ``intent`` = ``[action, object, location]`` (the three slots the ``ic`` downstream classifies),
``text`` = the transcription, ``speaker``. The three lists are the official splits (speakers held out).
"""

from __future__ import annotations

import csv
from pathlib import Path

from harness import hookimpl
from harness.api import CorpusError, CorpusRows, LocalCorpus, LocalCorpusParams, require

NAME = "fluent_commands"
SPLITS = {"train": "train_data.csv", "dev": "valid_data.csv", "test": "test_data.csv"}
COLUMNS = ("path", "speakerId", "transcription", "action", "object", "location")


class FluentCommandsParams(LocalCorpusParams):
    pass


class FluentCommands(LocalCorpus[FluentCommandsParams]):
    name = NAME
    version = "1"
    summary = "Fluent Speech Commands (data/*_data.csv): intents of three slots, text, speakers"
    Params = FluentCommandsParams

    def provided_labels(self, params: FluentCommandsParams) -> tuple[str, ...]:
        return ("speaker", "text", "intent")

    def read_splits(self, params: FluentCommandsParams, out_dir: Path) -> CorpusRows:
        root = Path(params.root)
        splits: dict[str, list[dict]] = {}
        missing: list[Path] = []
        for split, name in SPLITS.items():
            listing = require(root / "data" / name, NAME, f"the {split} list")
            with listing.open(newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                absent = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
                if absent:
                    raise CorpusError(f"{listing} lacks the column(s) {', '.join(absent)}; it must have "
                                      f"{', '.join(COLUMNS)} as Fluent Speech Commands' lists do.")
                rows = []
                for record in reader:
                    path = root / record["path"]
                    if not path.is_file():
                        missing.append(path)
                        continue
                    rows.append({
                        "id": path.stem, "path": str(path), "speaker": record["speakerId"],
                        "text": record["transcription"].strip().lower(),
                        "intent": [record["action"], record["object"], record["location"]],
                    })  # fmt: skip
            splits[split] = rows
        if missing:
            raise CorpusError(f"{NAME}: {len(missing)} files the lists name are missing (the first is {missing[0]}); "
                              "point root at the complete fluent_speech_commands_dataset folder.")
        return CorpusRows(splits)


@hookimpl
def harness_register_corpus(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(FluentCommands)
