"""Speech Commands v0.01 keyword spotting (SUPERB KS) from its two distribution archives.

Layout (``root`` is the training archive, ``test_root`` the separate test set)::

    root/<word>/<speaker>_nohash_<n>.wav           e.g. root/yes/0a7c2a8d_nohash_0.wav
    root/_background_noise_/<noise>.wav            e.g. root/_background_noise_/white_noise.wav
    test_root/<class>/<file>.wav                   the ten commands, _unknown_ and _silence_

As SUPERB (s3prl ``downstream/speech_commands``): train and dev come from ``root`` by the dataset's
own hash of the speaker (a file's ``<speaker>`` part, SHA-1, the percentage below 10 is dev, below
20 the archive's test part, which SUPERB leaves out, the rest train); test is ``test_root``. The
``keyword`` label is the folder name; the ``ks`` downstream counts words outside the ten commands
as ``_unknown_``. Silence: s3prl reads a random one-second crop of a background-noise file each time
one is drawn; here each noise file is cut into one-second segments once, every tenth of them in dev
and the others in train, so that features can be cached.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import soundfile as sf
from pydantic import Field

from harness import hookimpl
from harness.api import KEYWORD_SILENCE, CorpusError, CorpusRows, InputPath, LocalCorpus, LocalCorpusParams, require

NAME = "speech_commands"
NOISE_DIR = "_background_noise_"
#: the dataset's hash split: the largest count of files per class its README's function assumes
MAX_FILES_PER_CLASS = 2**27 - 1
#: one in this many silence segments goes to dev
SILENCE_DEV_EVERY = 10


class SpeechCommandsParams(LocalCorpusParams):
    test_root: InputPath = Field(description="the test set archive (speech_commands_test_set_v0.01)")
    silence_seconds: float = Field(1.0, gt=0, description="length of the silence segments cut from the noise files")


def hash_split(filename: str) -> str:
    """``dev``, ``test`` or ``train`` for a file of the training archive, by the hash of its speaker."""
    speaker = re.sub(r"_nohash_.*$", "", filename)
    digest = int(hashlib.sha1(speaker.encode("utf-8")).hexdigest(), 16)
    percentage = (digest % (MAX_FILES_PER_CLASS + 1)) * (100.0 / MAX_FILES_PER_CLASS)
    return "dev" if percentage < 10 else "test" if percentage < 20 else "train"


def speaker_of(filename: str) -> str:
    return filename.split("_nohash_")[0] if "_nohash_" in filename else Path(filename).stem


class SpeechCommands(LocalCorpus[SpeechCommandsParams]):
    name = NAME
    version = "1"
    summary = "Speech Commands v0.01 (training archive + test set): keywords, silence, speakers"
    Params = SpeechCommandsParams

    def provided_labels(self, params: SpeechCommandsParams) -> tuple[str, ...]:
        return ("speaker", "keyword")

    def read_splits(self, params: SpeechCommandsParams, out_dir: Path) -> CorpusRows:
        root, test_root = Path(params.root), Path(params.test_root)
        require(root / NOISE_DIR, NAME, "the background noise folder")
        require(test_root, NAME, "the test set folder")
        splits: dict[str, list[dict]] = {"train": [], "dev": [], "test": []}
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name != NOISE_DIR):
            for wav in sorted(folder.glob("*.wav")):
                split = hash_split(wav.name)
                if split != "test":
                    splits[split].append(self.row(folder.name, wav))
        for noise in sorted((root / NOISE_DIR).glob("*.wav")):
            info = sf.info(str(noise))
            count = int(info.frames / info.samplerate // params.silence_seconds)
            for k in range(count):
                start = round(k * params.silence_seconds, 4)
                splits["dev" if k % SILENCE_DEV_EVERY == 0 else "train"].append({
                    "id": f"{KEYWORD_SILENCE}-{noise.stem}-{k:04d}", "path": str(noise), "speaker": NOISE_DIR,
                    "keyword": KEYWORD_SILENCE, "start": start, "end": round(start + params.silence_seconds, 4),
                    "duration": round(params.silence_seconds, 4),
                })  # fmt: skip
        for folder in sorted(p for p in test_root.iterdir() if p.is_dir()):
            splits["test"] += [self.row(folder.name, wav) for wav in sorted(folder.glob("*.wav"))]
        for split, rows in splits.items():
            if not any(r["keyword"] != KEYWORD_SILENCE for r in rows):
                where = test_root if split == "test" else root
                raise CorpusError(f"{NAME}: the {split} split has no word recordings; expected files like "
                                  f"{where}/yes/0a7c2a8d_nohash_0.wav.")
        return CorpusRows(splits, extra_meta={"segments": True})

    @staticmethod
    def row(word: str, wav: Path) -> dict:
        return {"id": f"{word}-{wav.stem}", "path": str(wav), "speaker": speaker_of(wav.name), "keyword": word}


@hookimpl
def harness_register_corpus(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(SpeechCommands)
