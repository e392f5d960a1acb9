"""Downstream ``sid``: speaker identification; projection, mean pooling over valid frames, linear; accuracy.

SUPERB (s3prl ``downstream/voxceleb1/config.yaml``): projector to 256, ``UtteranceLevel`` with
``MeanPooling``, a linear classifier over the training speakers, cross-entropy; Adam at 1e-4,
batch 8 with 4 accumulated (32 per step), 200,000 steps, dev every 4,000, gradient clipping 1;
best on dev accuracy.

Where this differs: s3prl crops each *training* utterance to a random 8 s window
(``max_timestep: 128000``); the pooled cache holds whole-utterance means, so training here uses
whole utterances (exact for utterances up to 8 s, which includes every embedded one; on VoxCeleb1
longer utterances are seen whole instead of cropped). Dev and test use whole utterances in both.

``protocol: embedded``: 200 steps of 32 utterances at 5e-3, dev every 50 (the embedded corpus
has a few hundred utterances; 1e-4 would not move a head in 300 steps).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness import hookimpl
from harness.api import (
    CorpusError,
    EvalResult,
    PreparedCorpus,
    ProbedDownstream,
    ProbeParams,
    ProbeSettings,
    StageContext,
    Task,
    UtteranceTask,
    task_splits,
)

if TYPE_CHECKING:  # the model type loads torch; registering the plugin must not
    from harness.api import UpstreamModel

PROTOCOLS = {
    "superb": ProbeSettings(steps=200_000, lr=1e-4, batch_size=8, accumulate=4, eval_every=4000),
    "embedded": ProbeSettings(steps=200, lr=5e-3, batch_size=32, eval_every=50),
}


class SIDParams(ProbeParams):
    projector_dim: int = 256


class SpeakerTask(UtteranceTask):
    name = "sid"
    label_field = "speaker"


class SpeakerIdentification(ProbedDownstream[SIDParams]):
    name = "sid"
    version = "1"
    summary = "Speaker identification: projection, mean pooling, linear; accuracy"
    order = 30
    label_fields = ("speaker",)
    frame_cache = False  # pooled means
    protocols = PROTOCOLS

    def make_task(self, corpus: PreparedCorpus, params: SIDParams) -> Task:
        speakers = corpus.vocab.get("speakers")
        if not speakers:
            train = task_splits(corpus, "sid")["train"]
            speakers = sorted({str(r["speaker"]) for r in train})
        if not speakers:
            raise CorpusError(f"corpus {corpus.name!r} has no speakers to identify.")
        return SpeakerTask(list(speakers), params.projector_dim)

    def evaluate(self, upstream: UpstreamModel, corpus: PreparedCorpus, params: SIDParams,
                 ctx: StageContext) -> EvalResult:
        note = unseen_speakers(corpus)
        if note is not None:
            ctx.log(note)
        result = super().evaluate(upstream, corpus, params, ctx)
        if note is not None:
            result.extra["unseen_test_speakers"] = note
        return result


def unseen_speakers(corpus: PreparedCorpus) -> str | None:
    """One sentence when test speakers have no training utterance (a classifier cannot name them)."""
    splits = task_splits(corpus, "sid")
    train = {str(r["speaker"]) for r in splits["train"]}
    test = [str(r["speaker"]) for r in splits["test"]]
    unseen = sorted({s for s in test if s not in train})
    if not unseen:
        return None
    n_utts = sum(s in unseen for s in test)
    shown = ", ".join(unseen[:5]) + (" ..." if len(unseen) > 5 else "")
    return (f"sid: {len(unseen)} of {len(set(test))} test speakers of {corpus.name!r} have no training utterance "
            f"({shown}), so their {n_utts} test utterances count as errors; split by utterance, not by speaker "
            "(as VoxCeleb1's iden_split does), to measure identification.")


@hookimpl
def harness_register_downstream(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(SpeakerIdentification)
