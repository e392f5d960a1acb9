"""CREMA-D emotion recognition from its distribution layout.

Layout (``root`` holds ``AudioWAV``)::

    AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav     e.g. AudioWAV/1001_DFA_ANG_XX.wav

Six emotions (anger, disgust, fear, happy, neutral, sad). Splits hold out whole actors (a stable
hash of the actor id), so test voices are never heard in training.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from harness import hookimpl
from harness.api import CorpusError, CorpusRows, LocalCorpus, LocalCorpusParams, require, split_by_speaker

NAME = "crema_d"
EMOTIONS = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral", "SAD": "sad"}


class CremaDParams(LocalCorpusParams):
    dev_fraction: float = Field(0.1, gt=0, lt=0.5, description="share of actors in dev")
    test_fraction: float = Field(0.1, gt=0, lt=0.5, description="share of actors in test")


class CremaD(LocalCorpus[CremaDParams]):
    name = NAME
    version = "1"
    summary = "CREMA-D 6-class emotion; actors held out across splits"
    Params = CremaDParams

    def provided_labels(self, params: CremaDParams) -> tuple[str, ...]:
        return ("speaker", "emotion")

    def read_splits(self, params: CremaDParams, out_dir: Path) -> CorpusRows:
        folder = require(Path(params.root) / "AudioWAV", NAME, "the audio folder")
        rows = []
        for wav in sorted(folder.glob("*.wav")):
            parts = wav.stem.split("_")
            if len(parts) != 4 or parts[2] not in EMOTIONS:
                raise CorpusError(
                    f"{NAME}: {wav.name} is not named <actor>_<sentence>_<emotion>_<level>.wav; "
                    f"remove it from {folder}."
                )
            rows.append({"id": wav.stem, "path": str(wav), "speaker": parts[0], "emotion": EMOTIONS[parts[2]]})
        if not rows:
            raise CorpusError(f"{NAME}: expected files like {folder}/1001_DFA_ANG_XX.wav but found none.")
        split_of = split_by_speaker((r["speaker"] for r in rows), params.dev_fraction, params.test_fraction)
        splits: dict[str, list[dict]] = {"train": [], "dev": [], "test": []}
        for row in rows:
            splits[split_of[row["speaker"]]].append(row)
        return CorpusRows(splits)


@hookimpl
def harness_register_corpus(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(CremaD)
