"""QUESST 2014 query-by-example search (SUPERB QbE) from its distribution layout.

Layout (``root`` is ``quesst14Database``)::

    Audio/<document>.wav                                e.g. Audio/quesst14_00001.wav
    dev_queries/<query>.wav, eval_queries/<query>.wav   e.g. dev_queries/quesst14_dev_0001.wav
    scoring/groundtruth_quesst14_dev/quesst14_dev.rttm  "LEXEME quesst14_00013 1 1.23 0.45 quesst14_dev_0001 ..."
    scoring/groundtruth_quesst14_eval/quesst14_eval.rttm

Splits: ``documents``, ``dev`` (the dev queries) and ``test`` (the eval queries); each query row lists
the documents its term occurs in (``occurs_in``, from the ``LEXEME`` lines of the ground truth). The
audio is 8 kHz; it is resampled to 16 kHz when read.
"""

from __future__ import annotations

from pathlib import Path

from harness import hookimpl
from harness.api import CorpusError, CorpusRows, LocalCorpus, LocalCorpusParams, require

NAME = "quesst14"
QUERIES = {"dev": ("dev_queries", "scoring/groundtruth_quesst14_dev/quesst14_dev.rttm"),
           "test": ("eval_queries", "scoring/groundtruth_quesst14_eval/quesst14_eval.rttm")}


class Quesst14Params(LocalCorpusParams):
    pass


def read_occurrences(rttm: Path) -> dict[str, set[str]]:
    """Query id -> the documents it occurs in, from the ground truth's ``LEXEME`` lines."""
    found: dict[str, set[str]] = {}
    for n, line in enumerate(rttm.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        parts = line.split()
        if not parts or parts[0] != "LEXEME":
            continue
        if len(parts) < 6:
            raise CorpusError(f"{rttm} line {n} is not 'LEXEME <document> <channel> <begin> <duration> <query> ...'.")
        if parts[5] != "NO_KEYWORD":
            found.setdefault(parts[5], set()).add(parts[1])
    return found


class Quesst14(LocalCorpus[Quesst14Params]):
    name = NAME
    version = "1"
    summary = "QUESST 2014 (documents, dev and eval queries, rttm ground truth): query-by-example search"
    Params = Quesst14Params

    def provided_labels(self, params: Quesst14Params) -> tuple[str, ...]:
        return ("occurs_in",)

    def read_splits(self, params: Quesst14Params, out_dir: Path) -> CorpusRows:
        root = Path(params.root)
        audio_dir = require(root / "Audio", NAME, "the documents' audio folder")
        splits: dict[str, list[dict]] = {
            "documents": [{"id": w.stem, "path": str(w)} for w in sorted(audio_dir.glob("*.wav"))]}
        documents = {r["id"] for r in splits["documents"]}
        for split, (folder, truth) in QUERIES.items():
            query_dir = require(root / folder, NAME, f"the {split} queries' audio folder")
            occurrences = read_occurrences(require(root / truth, NAME, f"the {split} ground truth"))
            absent = sorted({d for docs in occurrences.values() for d in docs} - documents)
            if absent:
                raise CorpusError(f"{NAME}: the {split} ground truth names document {absent[0]!r}, which is not in "
                                  f"{audio_dir}; point root at the complete quesst14Database folder.")
            splits[split] = [{"id": w.stem, "path": str(w), "occurs_in": sorted(occurrences.get(w.stem, ()))}
                             for w in sorted(query_dir.glob("*.wav"))]
        return CorpusRows(splits)


@hookimpl
def harness_register_corpus(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(Quesst14)
