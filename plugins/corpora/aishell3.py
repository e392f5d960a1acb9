"""AISHELL-3 (Mandarin, 218 speakers) from its distribution layout.

Layout (``root`` is ``AISHELL-3``; ``train`` and ``test`` alike)::

    train/content.txt              "SSB00050001.wav\t广 guang3 州 zhou1 女 nv3 ..."
    train/wav/SSB0005/SSB00050001.wav

The text is the Chinese characters of ``content.txt`` (the pinyin after each character is
dropped). ``dev`` is a stable ``dev_fraction`` of the train utterances; ``test`` is the test folder.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from harness import hookimpl
from harness.api import CorpusError, CorpusRows, LocalCorpus, LocalCorpusParams, require, stable_fraction

NAME = "aishell3"


class Aishell3Params(LocalCorpusParams):
    dev_fraction: float = Field(0.05, gt=0, lt=0.5)


def read_part(root: Path, part: str) -> list[dict]:
    content = require(root / part / "content.txt", NAME, f"the {part} transcripts")
    rows = []
    for n, line in enumerate(content.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        name, _, labels = line.partition("\t")
        tokens = labels.split()
        if not name.endswith(".wav") or not tokens:
            raise CorpusError(f"{content} line {n} is not '<file>.wav<TAB>char pinyin char pinyin ...'.")
        utt = name.removesuffix(".wav")
        speaker = utt[:7]
        wav = require(root / part / "wav" / speaker / name, NAME, f"the audio of {utt}")
        rows.append({"id": utt, "path": str(wav), "speaker": speaker, "text": "".join(tokens[0::2])})
    return rows


class Aishell3(LocalCorpus[Aishell3Params]):
    name = NAME
    version = "1"
    summary = "AISHELL-3 Mandarin: text (characters), speakers"
    Params = Aishell3Params

    def provided_labels(self, params: Aishell3Params) -> tuple[str, ...]:
        return ("speaker", "text")

    def read_splits(self, params: Aishell3Params, out_dir: Path) -> CorpusRows:
        root = Path(params.root)
        train = read_part(root, "train")
        return CorpusRows({
            "train": [r for r in train if stable_fraction(r["id"]) >= params.dev_fraction],
            "dev": [r for r in train if stable_fraction(r["id"]) < params.dev_fraction],
            "test": read_part(root, "test"),
        })  # fmt: skip


@hookimpl
def harness_register_corpus(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(Aishell3)
