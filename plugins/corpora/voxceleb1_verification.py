"""VoxCeleb1 speaker verification (SUPERB ASV) from its distribution layout.

Layout (``root`` holds ``wav`` with the development and test speakers, and the trial list)::

    wav/<speaker id>/<video id>/<nnnnn>.wav        e.g. wav/id10270/x6uYqmx31kE/00001.wav
    veri_test2.txt                                 "1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav"

Test: the utterances the trial list names, with the list itself (``test.trials``, by utterance id;
``veri_test2.txt`` is the cleaned list SUPERB uses). Train: every utterance of the other speakers
(VoxCeleb1's development set), but for ``dev_fraction`` of those speakers, held out whole (a stable
hash of the id, at least one) as dev, whose trials are every pair of their utterances (the ``asv`` downstream
draws them).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from harness import hookimpl
from harness.api import (
    CorpusError,
    CorpusRows,
    LocalCorpus,
    LocalCorpusParams,
    require,
    stable_fraction,
    write_trials,
)

NAME = "voxceleb1_verification"


class VoxCeleb1VerificationParams(LocalCorpusParams):
    trial_file: str = Field("veri_test2.txt", description="the verification trial list, relative to root")
    audio_dir: str = Field("wav", description="the audio folder (development and test speakers), relative to root")
    dev_fraction: float = Field(0.02, gt=0, lt=0.5, description="share of the development speakers held out as dev")


def utterance_id(rel: str) -> str:
    return rel.removesuffix(".wav").replace("/", "-")


class VoxCeleb1Verification(LocalCorpus[VoxCeleb1VerificationParams]):
    name = NAME
    version = "1"
    summary = "VoxCeleb1 speaker verification (veri_test2.txt): speakers, trials; test speakers held out"
    Params = VoxCeleb1VerificationParams

    def provided_labels(self, params: VoxCeleb1VerificationParams) -> tuple[str, ...]:
        return ("speaker",)

    def read_splits(self, params: VoxCeleb1VerificationParams, out_dir: Path) -> CorpusRows:
        root = Path(params.root)
        trial_file = require(root / params.trial_file, NAME, "the verification trial list")
        audio_dir = require(root / params.audio_dir, NAME, "the audio folder")
        trials, named = [], {}
        for n, line in enumerate(trial_file.read_text(encoding="utf-8").splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 3 or parts[0] not in ("0", "1"):
                raise CorpusError(f"{trial_file} line {n} is not '<0|1> <speaker>/<video>/<file>.wav <same>'.")
            trials.append((int(parts[0]), utterance_id(parts[1]), utterance_id(parts[2])))
            named.update({utterance_id(rel): rel for rel in parts[1:]})
        missing = [audio_dir / rel for rel in named.values() if not (audio_dir / rel).is_file()]
        if missing:
            raise CorpusError(f"{NAME}: {len(missing)} files of {trial_file.name} are missing (the first is "
                              f"{missing[0]}); put the test speakers' audio under {audio_dir} too.")
        test_speakers = {rel.split("/")[0] for rel in named.values()}
        splits: dict[str, list[dict]] = {
            "train": [], "dev": [],
            "test": [self.row(audio_dir, rel) for rel in sorted(named.values())],
        }  # fmt: skip
        development: dict[str, list[dict]] = {}
        for wav in sorted(audio_dir.glob("*/*/*.wav")):
            row = self.row(audio_dir, wav.relative_to(audio_dir).as_posix())
            if row["speaker"] not in test_speakers:
                development.setdefault(row["speaker"], []).append(row)
        if len(development) < 2:
            raise CorpusError(f"{NAME}: found {len(development)} development speakers under {audio_dir}; it needs "
                              "the development set's audio beside the test speakers' (vox1_dev_wav and "
                              "vox1_test_wav in one wav folder).")
        ranked = sorted(development, key=lambda s: (stable_fraction(s, 0), s))
        held_out = set(ranked[: max(1, round(params.dev_fraction * len(ranked)))])
        for speaker, rows in development.items():
            splits["dev" if speaker in held_out else "train"] += rows
        out_dir.mkdir(parents=True, exist_ok=True)
        write_trials(out_dir / "test.trials", trials)
        return CorpusRows(splits, extra_meta={"trials": {"test": "test.trials"}})

    @staticmethod
    def row(audio_dir: Path, rel: str) -> dict:
        return {"id": utterance_id(rel), "path": str(audio_dir / rel), "speaker": rel.split("/")[0]}


@hookimpl
def harness_register_corpus(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(VoxCeleb1Verification)
