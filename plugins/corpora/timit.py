"""TIMIT from its distribution layout, phones folded from 61 to 39.

Layout (``root`` holds ``TRAIN`` and ``TEST``; upper or lower case, as the LDC and the common
re-distributions ship it)::

    TRAIN/DR1/FCJF0/SI1027.WAV   (NIST SPHERE or RIFF wav, 16 kHz)
    TRAIN/DR1/FCJF0/SI1027.PHN   "<start sample> <end sample> <phone>" per line
    TRAIN/DR1/FCJF0/SI1027.TXT   "<start> <end> <sentence>"

The SA sentences are left out (they are the same two sentences for every speaker). Splits: ``train``
is TRAIN; ``test`` is the 24-speaker core test set; ``dev`` is the rest of TEST. Phones are folded to
39 classes (:data:`harness.data.phones.TIMIT_61_TO_39`); ``q`` joins the phone before it, and repeated
``sil`` segments merge. Speaker ids are the folder names (e.g. ``fcjf0``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from harness import hookimpl
from harness.api import (
    SIL,
    TIMIT_39,
    TIMIT_61_TO_39,
    CorpusError,
    CorpusRows,
    LocalCorpus,
    LocalCorpusParams,
    normalise_text,
)

NAME = "timit"
SAMPLE_RATE = 16000
#: the core test set (Halberstadt 1998): 24 speakers, 2 men and 1 woman from each dialect region
CORE_TEST = frozenset(
    "mdab0 mwbt0 felc0 mtas1 mwew0 fpas0 mjmp0 mlnt0 fpkt0 mlll0 mtls0 fjlm0 "
    "mbpm0 mklt0 fnlp0 mcmj0 mjdh0 fmgd0 mgrt0 mnjm0 fdhc0 mjln0 mpam0 fmld0".split()
)


class TimitParams(LocalCorpusParams):
    include_sa: bool = Field(False, description="keep the two SA sentences of every speaker")


def _sibling(phn: Path, suffix: str) -> Path:
    for candidate in (phn.with_suffix(suffix.upper()), phn.with_suffix(suffix.lower())):
        if candidate.is_file():
            return candidate
    raise CorpusError(f"{NAME}: expected {phn.with_suffix(suffix.upper())} next to {phn.name} but it is missing.")


def _audio_for(phn: Path) -> Path:
    """The sentence's audio: a converted RIFF copy (``SX1.WAV.wav``, ``SX1.wav``) or the original ``SX1.WAV``."""
    stem = phn.with_suffix("")
    for candidate in (Path(f"{stem}.WAV.wav"), Path(f"{stem}.wav"), Path(f"{stem}.WAV"), Path(f"{stem}.wav.wav")):
        if candidate.is_file():
            return candidate
    raise CorpusError(f"{NAME}: expected {stem}.WAV next to {phn.name} but it is missing.")


def _child(folder: Path, name: str) -> Path | None:
    for candidate in (name, name.upper(), name.lower()):
        if (folder / candidate).exists():
            return folder / candidate
    return None


def read_phn(path: Path) -> list[list]:
    """Folded, contiguous ``[[phone, start_s, end_s], ...]`` from a .PHN file."""
    segs: list[list] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 3:
            raise CorpusError(f"{path} line {n} is not '<start> <end> <phone>'.")
        start, end, phone = int(parts[0]) / SAMPLE_RATE, int(parts[1]) / SAMPLE_RATE, parts[2].lower()
        if phone not in TIMIT_61_TO_39:
            raise CorpusError(f"{path} line {n} has the unknown TIMIT phone {phone!r}.")
        folded = TIMIT_61_TO_39[phone]
        if folded is None or (segs and folded == SIL and segs[-1][0] == SIL):
            if segs:
                segs[-1][2] = end
            continue
        if segs:
            start = segs[-1][2]
        segs.append([folded, start, end])
    return [[p, round(a, 5), round(b, 5)] for p, a, b in segs]


class Timit(LocalCorpus[TimitParams]):
    name = NAME
    version = "1"
    summary = "TIMIT (.WAV/.PHN/.TXT): 39 folded phones with times, text, speakers; core test set"
    Params = TimitParams

    def provided_labels(self, params: TimitParams) -> tuple[str, ...]:
        return ("speaker", "text", "phones")

    def read_splits(self, params: TimitParams, out_dir: Path) -> CorpusRows:
        root = Path(params.root)
        splits: dict[str, list[dict]] = {"train": [], "dev": [], "test": []}
        for part in ("train", "test"):
            folder = _child(root, part)
            if folder is None:
                raise CorpusError(
                    f"{NAME}: expected {root / part.upper()} but it is missing; point root at the TIMIT folder."
                )
            phns = sorted(p for p in folder.glob("*/*/*") if p.suffix.lower() == ".phn")
            if not phns:
                raise CorpusError(
                    f"{NAME}: expected <dialect>/<speaker>/<sentence>.PHN files under {folder} but found none."
                )
            for phn in phns:
                sentence = phn.stem.lower()
                if sentence.startswith("sa") and not params.include_sa:
                    continue
                speaker = phn.parent.name.lower()
                wav = _audio_for(phn)
                txt = _sibling(phn, ".txt")
                text = txt.read_text(encoding="utf-8").split(maxsplit=2)
                row = {
                    "id": f"{speaker}_{sentence}",
                    "path": str(wav),
                    "speaker": speaker,
                    "text": normalise_text(text[2] if len(text) == 3 else ""),
                    "phones": read_phn(phn),
                }
                split = "train" if part == "train" else "test" if speaker in CORE_TEST else "dev"
                splits[split].append(row)
        return CorpusRows(splits, vocab={"phones": list(TIMIT_39)}, extra_meta={"phone_times": True},
                          abx_splits=("dev", "test"))  # fmt: skip


@hookimpl
def harness_register_corpus(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(Timit)
