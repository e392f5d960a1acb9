"""TED-LIUM release 3 from its distribution layout (``.stm`` segments of ``.sph`` talks).

Layout (``root`` is ``TEDLIUM_release-3``)::

    legacy/{train,dev,test}/sph/<talk>.sph
    legacy/{train,dev,test}/stm/<talk>.stm      "<talk> 1 <speaker> <start> <end> <label> words ..."

(``split_set: speaker-adaptation`` reads ``speaker-adaptation/...`` instead.) Each ``.stm`` line is
one utterance: rows carry ``start`` and ``end`` (seconds within the talk's file) and ``duration``;
read them with :func:`harness.data.audio.load_utterance`. Segments marked
``ignore_time_segment_in_scoring`` are left out; split contractions are joined (``it 's`` ->
``it's``). Training segments whose transcript has an ``<unk>`` token are left out (the Speech-FT
paper's filter: their text would not match their audio; ``train_unk: strip`` keeps them with the
token removed); in dev and test the token is removed from the references. ``train_hours`` keeps a
seeded random subset of the training segments (the paper fine-tunes on 100 hours). Audio checks run
on the talk files (header checks by default, as the talks are long).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from harness import hookimpl
from harness.api import CorpusError, CorpusRows, LocalCorpus, LocalCorpusParams, audio, require, sample_hours

NAME = "tedlium"
_CONTRACTION = re.compile(r" '(?=\w)")


class TedliumParams(LocalCorpusParams):
    split_set: Literal["legacy", "speaker-adaptation"] = "legacy"
    audio_check: audio.CheckLevel = "header"
    min_duration: float = Field(0.1, ge=0, description="shorter segments are left out")
    train_unk: Literal["drop", "strip"] = Field(
        "drop", description="training segments with <unk>: left out (the paper's filter) or kept without the token")
    train_hours: float | None = Field(
        None, gt=0, exclude_if=lambda v: v is None,
        description="a seeded random subset of the training segments of at most these hours (the paper: 100)")
    subset_seed: int = Field(0, exclude_if=lambda v: v == 0, description="the seed of the train_hours subset")


def clean_text(words: list[str]) -> str:
    text = " ".join(w for w in words if w != "<unk>")
    return _CONTRACTION.sub("'", text).lower()


class Tedlium(LocalCorpus[TedliumParams]):
    name = NAME
    version = "2"
    summary = "TED-LIUM 3 (.stm segments of .sph talks): text, speakers"
    Params = TedliumParams

    def provided_labels(self, params: TedliumParams) -> tuple[str, ...]:
        return ("speaker", "text")

    def read_splits(self, params: TedliumParams, out_dir: Path) -> CorpusRows:
        base = require(Path(params.root) / params.split_set, NAME, f"the {params.split_set} split set")
        splits: dict[str, list[dict]] = {}
        for split in ("train", "dev", "test"):
            stm_dir = require(base / split / "stm", NAME, f"the {split} transcripts")
            rows = []
            for stm in sorted(stm_dir.glob("*.stm")):
                sph = base / split / "sph" / f"{stm.stem}.sph"
                if not sph.is_file():
                    raise CorpusError(f"{NAME}: expected {sph} (the audio of {stm.name}) but it is missing.")
                for n, line in enumerate(stm.read_text(encoding="utf-8").splitlines(), 1):
                    parts = line.split()
                    if len(parts) < 6 or parts[0].startswith(";;"):
                        continue
                    try:
                        start, end = float(parts[3]), float(parts[4])
                    except ValueError:
                        raise CorpusError(f"{stm} line {n}: start and end must be seconds.") from None
                    words = parts[6:] if parts[5].startswith("<") else parts[5:]
                    if "ignore_time_segment_in_scoring" in words or end - start < params.min_duration:
                        continue
                    if split == "train" and params.train_unk == "drop" and "<unk>" in words:
                        continue
                    text = clean_text(words)
                    if not text:
                        continue
                    rows.append({"id": f"{stm.stem}-{int(round(start * 100)):07d}", "path": str(sph),
                                 "speaker": parts[2], "start": start, "end": end,
                                 "duration": round(end - start, 4), "text": text})  # fmt: skip
            splits[split] = rows
        return CorpusRows(splits, extra_meta={"segments": True})

    def derive_splits(self, found: CorpusRows, params: TedliumParams) -> CorpusRows:
        if params.train_hours is not None:
            found.splits["train"] = sample_hours(found.splits["train"], params.train_hours, params.subset_seed)
        return found

    def check_split(self, rows: list[dict[str, Any]], out_dir: Path, params: TedliumParams) -> list[dict[str, Any]]:
        """The checks run on the talk files (each once); a bad talk leaves out all its segments."""
        report = audio.check_files({r["path"] for r in rows}, level=params.audio_check, skip_bad=params.skip_bad,
                                   what=f"{NAME} audio files")  # fmt: skip
        return [r for r in rows if r["path"] not in report.bad]


@hookimpl
def harness_register_corpus(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(Tedlium)
