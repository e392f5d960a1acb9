"""Downstream ``ks``: keyword spotting over twelve classes; projection, mean pooling, linear; accuracy.

SUPERB (s3prl ``downstream/speech_commands``, Speech Commands v0.01): the ten commands (yes, no, up,
down, left, right, on, off, stop, go), ``_unknown_`` for every other word and ``_silence_`` for
background noise; projector to 256, ``UtteranceLevel`` with ``MeanPooling``, cross-entropy; Adam at
1e-4, batch 32, 200,000 steps, dev every 4,000, gradient clipping 1; training batches are drawn
with replacement so that every class is equally likely (``WeightedRandomSampler`` with weights
``1 / class count``; :class:`harness.data.batching.BalancedBatchSampler`); best on dev accuracy.
Where this differs: s3prl's dev batches are drawn the same balanced way, at random on each
evaluation; here dev is every dev row once, so the choice of the best step does not depend on a draw.

The corpus's ``keyword`` field holds the word said (or ``_silence_``); words outside the ten
commands count as ``_unknown_``.

``protocol: embedded``: 200 steps of 32 utterances at 5e-3, dev every 50, as SID and ER.
"""

from __future__ import annotations

from typing import Any

from harness import hookimpl
from harness.api import (
    KEYWORD_COMMANDS,
    KEYWORD_SILENCE,
    KEYWORD_UNKNOWN,
    PreparedCorpus,
    ProbedDownstream,
    ProbeParams,
    ProbeSettings,
    Task,
    UtteranceTask,
)

CLASSES = (*KEYWORD_COMMANDS, KEYWORD_UNKNOWN, KEYWORD_SILENCE)

PROTOCOLS = {
    "superb": ProbeSettings(steps=200_000, lr=1e-4, batch_size=32, eval_every=4000, balanced=True),
    "embedded": ProbeSettings(steps=200, lr=5e-3, batch_size=32, eval_every=50, balanced=True),
}


class KSParams(ProbeParams):
    projector_dim: int = 256


class KeywordTask(UtteranceTask):
    name = "ks"
    label_field = "keyword"

    def label_of(self, row: dict[str, Any]) -> str:
        word = str(row[self.label_field])
        return word if word in CLASSES else KEYWORD_UNKNOWN


class KeywordSpotting(ProbedDownstream[KSParams]):
    name = "ks"
    version = "1"
    summary = "Keyword spotting (ten commands, unknown, silence): projection, mean pooling, linear; accuracy"
    order = 25
    label_fields = ("keyword",)
    frame_cache = False  # pooled means
    protocols = PROTOCOLS

    def make_task(self, corpus: PreparedCorpus, params: KSParams) -> Task:
        corpus.require(self.label_fields, f"downstream {self.name!r}")
        return KeywordTask(CLASSES, params.projector_dim)


@hookimpl
def harness_register_downstream(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(KeywordSpotting)
