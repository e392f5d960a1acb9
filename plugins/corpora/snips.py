"""Audio SNIPS for slot filling, in the layout SUPERB's preparation produces.

Layout (``root`` is the prepared ``SNIPS`` folder)::

    all.iob.snips.txt        "<speaker>-snips-<split>-<n> BOS w1 ... wn EOS\tO t1 ... tn <intent>"
    train/<speaker>-snips-train-<n>.wav
    valid/<speaker>-snips-valid-<n>.wav
    test/<speaker>-snips-test-<n>.wav

IOB tags give the slots (``B-x`` starts slot ``x``, ``I-x`` continues it); the last field is the
intent. As in SUPERB, each split keeps only its own synthetic voices: the test voices are never
heard in training (defaults below are SUPERB's speaker lists).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from harness import hookimpl
from harness.api import CorpusError, CorpusRows, LocalCorpus, LocalCorpusParams, require

NAME = "snips"
FOLDERS = {"train": "train", "dev": "valid", "test": "test"}


class SnipsParams(LocalCorpusParams):
    train_speakers: list[str] = Field(
        default_factory=lambda: ["Ivy", "Joanna", "Joey", "Justin", "Kendra", "Kimberly", "Matthew", "Salli"]
    )
    dev_speakers: list[str] = Field(default_factory=lambda: ["Aditi", "Amy", "Geraint", "Nicole"])
    test_speakers: list[str] = Field(default_factory=lambda: ["Brian", "Emma", "Raveena", "Russell"])


def parse_iob(line: str, where: str) -> tuple[str, str, dict]:
    """(utterance id, intent, {text, slots}) from one line of all.iob.snips.txt."""
    head, sep, tags = line.partition("\t")
    words, labels = head.split(), tags.split()
    if not sep or len(words) < 3 or len(labels) != len(words) - 1:
        raise CorpusError(f"{where} is not '<id> BOS words EOS<TAB>O tags <intent>'.")
    utt, words, labels, intent = words[0], words[2:-1], labels[1:-1], labels[-1]
    slots: list[list[str]] = []
    for word, tag in zip(words, labels, strict=True):
        if tag.startswith("B-") or (tag.startswith("I-") and (not slots or slots[-1][0] != tag[2:])):
            slots.append([tag[2:], word.lower()])
        elif tag.startswith("I-"):
            slots[-1][1] += " " + word.lower()
    return utt, intent, {"text": " ".join(w.lower() for w in words), "slots": slots}


class Snips(LocalCorpus[SnipsParams]):
    name = NAME
    version = "1"
    summary = "Audio SNIPS (SUPERB slot filling): intent, slots, text; held-out test voices"
    Params = SnipsParams

    def provided_labels(self, params: SnipsParams) -> tuple[str, ...]:
        return ("speaker", "intent", "text", "slots")

    def read_splits(self, params: SnipsParams, out_dir: Path) -> CorpusRows:
        root = Path(params.root)
        iob = require(root / "all.iob.snips.txt", NAME, "the transcripts with slot tags")
        labels = {}
        for n, line in enumerate(iob.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                utt, intent, row = parse_iob(line, f"{iob} line {n}")
                labels[utt] = {"intent": intent, **row}
        speakers = {"train": params.train_speakers, "dev": params.dev_speakers, "test": params.test_speakers}
        splits: dict[str, list[dict]] = {}
        for split, folder_name in FOLDERS.items():
            folder = require(root / folder_name, NAME, f"the {split} audio")
            rows = []
            for wav in sorted(folder.glob("*.wav")):
                speaker = wav.stem.split("-")[0]
                if speaker not in speakers[split] or wav.stem not in labels:
                    continue
                rows.append({"id": wav.stem, "path": str(wav), "speaker": speaker, **labels[wav.stem]})
            if not rows:
                raise CorpusError(
                    f"{NAME}: no audio of the {split} speakers ({', '.join(speakers[split])}) with a transcript "
                    f"in {folder}; check root and the speaker lists."
                )
            splits[split] = rows
        return CorpusRows(splits)


@hookimpl
def harness_register_corpus(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(Snips)
