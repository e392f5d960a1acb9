"""LibriSpeech from its distribution layout, with phone transcripts from a lexicon.

Layout (``root`` is the ``LibriSpeech`` folder)::

    <subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac
    <subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt     "<utt id> WORDS ..."

Phones come from a pronunciation lexicon (``librispeech-lexicon.txt``: ``WORD PH1 PH2 ...``, the
first pronunciation of each word, stress digits removed, as s3prl's libriphone setup does); they
carry no times (``null``), and ``meta.json`` says ``"phone_times": false``. Utterances with a word
missing from the lexicon are left out with a logged count. Without a lexicon the corpus has text only.

Speaker identification on LibriSpeech needs test utterances of the training speakers, which the
official subsets do not have (their speakers are disjoint). ``sid_train_hours`` adds SID's own
splits, used for ``sid`` through ``task_splits``: a ``sid_held_out`` share of the train split's
utterances, chosen by a hash of their ids (so about that share of each speaker's), is held out, half
as ``sid_dev`` and half as ``sid_test``; ``sid_train`` is a
seeded random subset of the rest of at most ``sid_train_hours`` hours that keeps every speaker (the
Speech-FT paper's 10-hour SID set, drawn from the utterance-level split of train-clean-100 that CPC
made; that split's file lists are not read here).
"""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import Field

from harness import hookimpl
from harness.api import (
    ARPABET,
    CorpusError,
    CorpusRows,
    InputPath,
    LocalCorpus,
    LocalCorpusParams,
    require,
    sample_hours,
    stable_fraction,
    strip_stress,
)

log = logging.getLogger("harness.corpora.librispeech")
NAME = "librispeech"


class LibriSpeechParams(LocalCorpusParams):
    train: list[str] = Field(default_factory=lambda: ["train-clean-100"], description="subsets of the train split")
    dev: list[str] = Field(default_factory=lambda: ["dev-clean"])
    test: list[str] = Field(default_factory=lambda: ["test-clean"])
    lexicon: InputPath | None = Field(
        None, description="lexicon file (default: <root>/librispeech-lexicon.txt if present)"
    )
    sid_train_hours: float | None = Field(
        None, gt=0, exclude_if=lambda v: v is None,
        description="add SID splits of the train speakers: sid_train of at most these hours (the paper: 10)")
    sid_held_out: float = Field(0.2, gt=0, lt=1, exclude_if=lambda v: v == 0.2,
                                description="the share of the train utterances (by id hash) held out for the SID test "
                                            "and dev splits")
    subset_seed: int = Field(0, exclude_if=lambda v: v == 0, description="the seed of the sid_train subset")


def read_lexicon(path: Path) -> dict[str, list[str]]:
    """Word (upper case) -> first pronunciation, phones lower case without stress."""
    lexicon: dict[str, list[str]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2:
            raise CorpusError(f"{path} line {n} has a word without a pronunciation; expected 'WORD PH1 PH2 ...'.")
        lexicon.setdefault(parts[0].upper(), [strip_stress(p) for p in parts[1:]])
    return lexicon


def read_subset(root: Path, subset: str) -> list[dict]:
    folder = require(root / subset, NAME, f"the {subset} subset")
    rows = []
    transcripts = sorted(folder.glob("*/*/*.trans.txt"))
    if not transcripts:
        raise CorpusError(
            f"{NAME}: expected transcripts like {folder}/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt "
            f"but found none; point root at the LibriSpeech folder."
        )
    as_wav = []
    for trans in transcripts:
        for line in trans.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            utt, _, words = line.partition(" ")
            flac, wav = trans.parent / f"{utt}.flac", trans.parent / f"{utt}.wav"
            if not flac.exists() and wav.is_file():
                as_wav.append(wav)
                audio_path = wav
            else:
                audio_path = require(flac, NAME, f"the audio of {utt}")
            rows.append(
                {"id": utt, "path": str(audio_path), "speaker": utt.split("-")[0], "text": words.strip().lower()}
            )
    if as_wav:
        log.warning("%s: %d utterances of %s are .wav files where the distribution has .flac (e.g. %s); "
                    "reading the .wav files.", NAME, len(as_wav), subset, as_wav[0])
    return rows


class LibriSpeech(LocalCorpus[LibriSpeechParams]):
    name = NAME
    version = "1"
    summary = "LibriSpeech (flac + trans.txt); phones from a lexicon; text, speakers"
    Params = LibriSpeechParams

    def provided_labels(self, params: LibriSpeechParams) -> tuple[str, ...] | None:
        # phones come with a lexicon; the default one is looked for only when preparing
        return ("speaker", "text", "phones") if params.lexicon is not None else None

    def read_splits(self, params: LibriSpeechParams, out_dir: Path) -> CorpusRows:
        root = Path(params.root)
        lexicon_path = params.lexicon or (root / "librispeech-lexicon.txt")
        lexicon = read_lexicon(lexicon_path) if Path(lexicon_path).is_file() else None
        if params.lexicon is None and lexicon is None:
            log.info("%s: no lexicon at %s; preparing text without phones.", NAME, lexicon_path)
        splits: dict[str, list[dict]] = {}
        for split, subsets in (("train", params.train), ("dev", params.dev), ("test", params.test)):
            rows = [r for s in subsets for r in read_subset(root, s)]
            if lexicon is not None:
                rows = self._add_phones(rows, lexicon, split)
            splits[split] = rows
        vocab = {"phones": sorted(ARPABET)} if lexicon is not None else {}
        return CorpusRows(splits, vocab=vocab, extra_meta={"phone_times": False})

    def derive_splits(self, found: CorpusRows, params: LibriSpeechParams) -> CorpusRows:
        if params.sid_train_hours is None:
            return found
        held, kept = [], []
        for row in found.splits["train"]:
            (held if stable_fraction(row["id"], 1) < params.sid_held_out else kept).append(row)
        found.splits["sid_train"] = sample_hours(kept, params.sid_train_hours, params.subset_seed, keep_speakers=True)
        found.splits["sid_dev"] = [r for r in held if stable_fraction(r["id"], 2) < 0.5]
        found.splits["sid_test"] = [r for r in held if stable_fraction(r["id"], 2) >= 0.5]
        found.task_splits = {**(found.task_splits or {}), "sid": {"train": "sid_train", "dev": "sid_dev",
                                                                 "test": "sid_test"}}
        return found

    @staticmethod
    def _add_phones(rows: list[dict], lexicon: dict[str, list[str]], split: str) -> list[dict]:
        out, oov = [], set()
        for row in rows:
            missing = [w for w in row["text"].upper().split() if w not in lexicon]
            if missing:
                oov.update(missing)
                continue
            phones = [p for w in row["text"].upper().split() for p in lexicon[w]]
            out.append({**row, "phones": [[p, None, None] for p in phones]})
        if oov:
            log.warning("%s: left out %d %s utterances with words missing from the lexicon (e.g. %s).",
                        NAME, len(rows) - len(out), split, ", ".join(sorted(oov)[:5]))  # fmt: skip
        return out


@hookimpl
def harness_register_corpus(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(LibriSpeech)
