"""Downstream ``intent``: one intent label per utterance; projection, mean pooling over valid frames,
linear; accuracy.

The head is SUPERB's intent-classification head (s3prl ``downstream/fluent_commands/config.yaml``:
projector to 256, ``UtteranceLevel`` with ``MeanPooling``, a linear classifier, cross-entropy; Adam
at 1e-4, batch 32, 200,000 steps, dev every 4,000, gradient clipping 1; best on dev accuracy) over
one ``intent`` label (the embedded corpus: seven Audio SNIPS intents such as ``play_music``), so the
metric is plain accuracy. The harness's own ``ic`` is SUPERB's task, with Fluent Speech Commands'
three slots. The classes are the corpus's ``intents`` vocabulary, or else the intents of the
training split.

``protocol: embedded``: 200 steps of 32 utterances at 5e-3, dev every 50.

Written against ``harness.api`` alone, as a third-party downstream should be: the probe, the
feature cache, folds and per-item statistics come from :class:`harness.api.ProbedDownstream`.
"""

from __future__ import annotations

from harness import hookimpl
from harness.api import (
    CorpusError,
    PreparedCorpus,
    ProbedDownstream,
    ProbeParams,
    ProbeSettings,
    Task,
    UtteranceTask,
    task_splits,
)

PROTOCOLS = {
    "superb": ProbeSettings(steps=200_000, lr=1e-4, batch_size=32, eval_every=4000),
    "embedded": ProbeSettings(steps=200, lr=5e-3, batch_size=32, eval_every=50),
}


class ICParams(ProbeParams):
    projector_dim: int = 256


class IntentTask(UtteranceTask):
    name = "intent"
    label_field = "intent"


class IntentClassification(ProbedDownstream[ICParams]):
    name = "intent"
    version = "1"
    summary = "One intent label per utterance: projection, mean pooling, linear; accuracy"
    order = 45  # semantics, beside slot filling
    label_fields = ("intent",)
    protocols = PROTOCOLS

    def make_task(self, corpus: PreparedCorpus, params: ICParams) -> Task:
        intents = corpus.vocab.get("intents")
        if not intents:
            intents = sorted({str(r["intent"]) for r in task_splits(corpus, self.name)["train"]})
        if not intents:
            raise CorpusError(f"corpus {corpus.name!r} has no intents to classify.")
        return IntentTask(list(intents), params.projector_dim)


@hookimpl
def harness_register_downstream(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(IntentClassification)
