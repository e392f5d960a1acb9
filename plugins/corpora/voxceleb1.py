"""VoxCeleb1 speaker identification (SUPERB SID) from its distribution layout.

Layout (``root`` holds ``wav`` and the split list)::

    wav/<speaker id>/<video id>/<nnnnn>.wav        e.g. wav/id10001/1zcIwhmdeo4/00001.wav
    iden_split.txt                                 "<1|2|3> id10001/1zcIwhmdeo4/00001.wav"

1 is train, 2 dev, 3 test (the official identification split: every speaker in all three).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from harness import hookimpl
from harness.api import CorpusError, CorpusRows, LocalCorpus, LocalCorpusParams, require

NAME = "voxceleb1"
SPLITS = {"1": "train", "2": "dev", "3": "test"}


class VoxCeleb1Params(LocalCorpusParams):
    split_file: str = Field("iden_split.txt", description="the identification split list, relative to root")
    audio_dir: str = Field("wav", description="the audio folder, relative to root")


class VoxCeleb1(LocalCorpus[VoxCeleb1Params]):
    name = NAME
    version = "1"
    summary = "VoxCeleb1 speaker identification (iden_split.txt): speakers"
    Params = VoxCeleb1Params

    def provided_labels(self, params: VoxCeleb1Params) -> tuple[str, ...]:
        return ("speaker",)

    def read_splits(self, params: VoxCeleb1Params, out_dir: Path) -> CorpusRows:
        root = Path(params.root)
        split_file = require(root / params.split_file, NAME, "the identification split list")
        audio_dir = require(root / params.audio_dir, NAME, "the audio folder")
        splits: dict[str, list[dict]] = {s: [] for s in SPLITS.values()}
        missing: list[Path] = []
        for n, line in enumerate(split_file.read_text(encoding="utf-8").splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[0] not in SPLITS:
                raise CorpusError(f"{split_file} line {n} is not '<1|2|3> <speaker>/<video>/<file>.wav'.")
            rel = parts[1]
            path = audio_dir / rel
            if not path.is_file():
                missing.append(path)
                continue
            row = {"id": rel.removesuffix(".wav").replace("/", "-"), "path": str(path), "speaker": rel.split("/")[0]}
            splits[SPLITS[parts[0]]].append(row)
        if missing:
            raise CorpusError(
                f"{NAME}: {len(missing)} files listed in {split_file.name} are missing (the first is {missing[0]}); "
                f"point root at the complete VoxCeleb1 folder."
            )
        return CorpusRows(splits)


@hookimpl
def harness_register_corpus(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(VoxCeleb1)
