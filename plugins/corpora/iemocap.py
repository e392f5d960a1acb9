"""IEMOCAP emotion recognition (SUPERB ER) from its distribution layout.

Layout (``root`` is ``IEMOCAP_full_release``)::

    Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav
    Session1/dialog/EmoEvaluation/Ses01F_impro01.txt
        "[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[2.5000, 2.5000, 2.5000]"

Four classes as SUPERB uses them: neutral, happy (excited merged into happy), sad, angry; other
labels are left out. Speakers are the ten actors (``Ses01F``: session 1, the woman); ``fold`` is
the session (0-4): the SUPERB protocol tests on one session and trains on the other four.
Splits: ``test`` is session ``test_session``; ``dev`` is a stable ``dev_fraction`` of the rest, or
with ``dev_session`` that whole session (the Speech-FT paper fine-tunes on Sessions 2-5 and validates
on Session 1: ``dev_session: 1`` with the default ``test_session``, so dev and test hold the same
rows; the fold-wise ER evaluation reads every row once).
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field

from harness import hookimpl
from harness.api import CorpusError, CorpusRows, LocalCorpus, LocalCorpusParams, require, stable_fraction

NAME = "iemocap"
LABELS = {"neu": "neutral", "hap": "happy", "exc": "happy", "sad": "sad", "ang": "angry"}
_LINE = re.compile(r"^\[[\d.]+ - [\d.]+\]\t(\S+)\t(\S+)\t")


class IemocapParams(LocalCorpusParams):
    test_session: int = Field(1, ge=1, le=5, description="the session held out as the test split")
    dev_fraction: float = Field(0.1, gt=0, lt=0.5)
    dev_session: int | None = Field(None, ge=1, le=5, exclude_if=lambda v: v is None,
                                    description="the session the dev split holds (None: dev_fraction of the rest)")


class Iemocap(LocalCorpus[IemocapParams]):
    name = NAME
    version = "1"
    summary = "IEMOCAP 4-class emotion (excited merged into happy), 5 session folds"
    Params = IemocapParams

    def provided_labels(self, params: IemocapParams) -> tuple[str, ...]:
        return ("speaker", "emotion", "fold")

    def read_splits(self, params: IemocapParams, out_dir: Path) -> CorpusRows:
        root = Path(params.root)
        splits: dict[str, list[dict]] = {"train": [], "dev": [], "test": []}
        for session in range(1, 6):
            folder = require(root / f"Session{session}", NAME, "one of the five sessions")
            labels_dir = require(folder / "dialog" / "EmoEvaluation", NAME, "the emotion labels")
            for label_file in sorted(labels_dir.glob("*.txt")):
                for line in label_file.read_text(encoding="utf-8", errors="replace").splitlines():
                    m = _LINE.match(line)
                    if not m or m.group(2) not in LABELS:
                        continue
                    utt = m.group(1)
                    dialog = utt.rsplit("_", 1)[0]
                    wav = folder / "sentences" / "wav" / dialog / f"{utt}.wav"
                    if not wav.is_file():
                        raise CorpusError(f"{NAME}: expected {wav} (labelled in {label_file.name}) but it is missing.")
                    row = {
                        "id": utt,
                        "path": str(wav),
                        "speaker": utt[:5] + utt.rsplit("_", 1)[1][0],
                        "emotion": LABELS[m.group(2)],
                        "fold": session - 1,
                    }
                    for split in self._splits_of(session, utt, params):
                        splits[split].append(row)
        return CorpusRows(splits, extra_meta={"folds": 5, "test_fold": params.test_session - 1})

    @staticmethod
    def _splits_of(session: int, utt: str, params: IemocapParams) -> list[str]:
        """The splits an utterance of ``session`` belongs to (two when the dev session is the test one)."""
        if params.dev_session is not None:
            roles = {"test": session == params.test_session, "dev": session == params.dev_session}
            return [role for role, member in roles.items() if member] or ["train"]
        if session == params.test_session:
            return ["test"]
        return ["dev" if stable_fraction(utt) < params.dev_fraction else "train"]


@hookimpl
def harness_register_corpus(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(Iemocap)
