"""AudioSet from local files: segment CSVs, the class index, the ontology, downloaded clips.

Layout (``root``)::

    class_labels_indices.csv
    ontology.json                                    (needed for the non-speech filter)
    balanced_train_segments.csv, eval_segments.csv   (any segment CSVs; see train_csv/test_csv)
    audio/<csv stem>/<YTID>.wav                      (or Y<YTID>.wav, <YTID>_<start>.wav; any
                                                      format soundfile reads)

``dev`` is a stable ``dev_fraction`` of the training clips. The non-speech filter (on by default,
as in the non-speech fine-tuning scenario) drops every clip with a label under the ``exclude``
classes of the ontology (default: Human voice, which holds speech, and Singing), then keeps the
``max_classes`` most frequent remaining classes with at least ``min_clips`` training clips.
Clips that were never downloaded are skipped with a logged count (``skip_missing``), as AudioSet
downloads always have holes. The CSV reading is :mod:`harness.data.audioset_csv`, shared with the
embedded ``synthetic_nonspeech`` corpus.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from harness import hookimpl
from harness.api import (
    CorpusRows,
    LocalCorpus,
    LocalCorpusParams,
    audioset_rows,
    carve_dev,
    read_class_index,
    read_ontology,
    read_segments,
    require,
    subtree,
)

NAME = "audioset"


class AudioSetParams(LocalCorpusParams):
    train_csv: str = "balanced_train_segments.csv"
    test_csv: str = "eval_segments.csv"
    audio_dir: str = Field("audio", description="folder with one sub-folder per CSV (named like the CSV)")
    dev_fraction: float = Field(0.1, gt=0, lt=0.5)
    nonspeech: bool = Field(True, description="drop clips with labels under `exclude` (needs ontology.json)")
    exclude: list[str] = Field(default_factory=lambda: ["Human voice", "Singing"])
    max_classes: int | None = Field(None, ge=1)
    min_clips: int = Field(1, ge=1)
    skip_missing: bool = True


def audio_folder(root: Path, audio_dir: str, csv_name: str) -> Path:
    """``audio/<csv stem>`` when it exists, else ``audio`` itself."""
    nested = root / audio_dir / Path(csv_name).stem
    return nested if nested.is_dir() else require(root / audio_dir, NAME, "the downloaded clips")


class AudioSet(LocalCorpus[AudioSetParams]):
    name = NAME
    version = "1"
    summary = "AudioSet clips from segment CSVs; multi-label tags; non-speech filter via the ontology"
    Params = AudioSetParams

    def read_splits(self, params: AudioSetParams, out_dir: Path) -> CorpusRows:
        root = Path(params.root)
        classes = read_class_index(require(root / "class_labels_indices.csv", NAME, "the class index"))
        exclude: set[str] = set()
        if params.nonspeech:
            ontology = read_ontology(require(root / "ontology.json", NAME, "the ontology, for the non-speech filter"))
            exclude = subtree(ontology, params.exclude)
        train_all = read_segments(require(root / params.train_csv, NAME, "a segment CSV"))
        test = read_segments(require(root / params.test_csv, NAME, "a segment CSV"))
        train, dev = carve_dev(train_all, params.dev_fraction)
        train_audio = audio_folder(root, params.audio_dir, params.train_csv)
        splits = {
            "train": (train, train_audio),
            "dev": (dev, train_audio),
            "test": (test, audio_folder(root, params.audio_dir, params.test_csv)),
        }
        return audioset_rows(
            out_dir, NAME, splits, classes, exclude=exclude, max_classes=params.max_classes,
            min_clips=params.min_clips, skip_missing=params.skip_missing,
            extra_meta={"excluded_classes": len(exclude)},
        )  # fmt: skip


@hookimpl
def harness_register_corpus(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(AudioSet)
