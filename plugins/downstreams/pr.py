"""Downstream ``pr``: phoneme recognition, a linear CTC head over the phone inventory; PER.

SUPERB (s3prl ``downstream/ctc/libriphone.yaml``): projector to 256 then a linear layer
(``FrameLevel``) to the phones plus the CTC blank, no nonlinearity, so the head is linear; CTC loss
with ``zero_infinity``; Adam at 1e-2, batch 16 with 2 accumulated (32 per step), 100,000 steps,
dev every 1,000, gradient clipping 1; batches are windows of neighbours in label-length order
(``bucketing: True``; :class:`harness.data.batching.SortedSliceSampler`); best on dev PER.
PER = phone edits summed over the set over the summed reference length. Targets are the corpus's
phone sequence without silence (``sil``): SUPERB's LibriSpeech phone transcriptions have no silence
token either.

``protocol: embedded`` keeps the head and learning rate and trains 200 steps of 16 utterances,
dev every 50 (the embedded corpus has a few hundred short utterances; more steps overfit it).
"""

from __future__ import annotations

from typing import Any

from harness import hookimpl
from harness.api import (
    CorpusError,
    CTCTask,
    PreparedCorpus,
    ProbedDownstream,
    ProbeParams,
    ProbeSettings,
    Task,
    sequence_edits,
)

SILENCES = frozenset({"sil", "sp", "spn", "h#", "pau", "epi"})

PROTOCOLS = {
    "superb": ProbeSettings(steps=100_000, lr=1e-2, batch_size=16, accumulate=2, eval_every=1000,
                            sorted_batches=True),
    "embedded": ProbeSettings(steps=200, lr=1e-2, batch_size=16, eval_every=50),
}


class PRParams(ProbeParams):
    project_dim: int = 256


class PhoneRecognitionTask(CTCTask):
    name = "pr"
    label_fields = ("phones",)
    metrics = {"per": "lower"}
    primary_metric = "per"

    def __init__(self, phones: list[str], project_dim: int = 256):
        inventory = [p for p in phones if p not in SILENCES]
        if not inventory:
            raise CorpusError("phoneme recognition needs a phone inventory (vocab.json 'phones').")
        super().__init__(inventory, project_dim)

    def target(self, row: dict[str, Any]) -> list[int]:
        ids = []
        for entry in row["phones"]:
            phone = entry[0]
            if phone in SILENCES:
                continue
            if phone not in self.index:
                raise CorpusError(f"utterance {row['id']!r} has phone {phone!r}, which the corpus vocabulary lacks.")
            ids.append(self.index[phone])
        return ids

    def render(self, ids: list[int]) -> list[str]:
        return [self.vocab[i] for i in ids]

    def item_stats(self, ref: list[str], hyp: list[str]) -> dict[str, list[float]]:
        return {"per": sequence_edits(ref, hyp)}


class PhoneRecognition(ProbedDownstream[PRParams]):
    name = "pr"
    version = "1"
    summary = "Phoneme recognition: linear CTC head over the phone inventory; PER"
    order = 10
    label_fields = ("phones",)
    protocols = PROTOCOLS

    def make_task(self, corpus: PreparedCorpus, params: PRParams) -> Task:
        phones = corpus.vocab.get("phones")
        if not phones:
            raise CorpusError(f"corpus {corpus.name!r} has no phone vocabulary (vocab.json 'phones').")
        return PhoneRecognitionTask(list(phones), params.project_dim)


@hookimpl
def harness_register_downstream(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(PhoneRecognition)
