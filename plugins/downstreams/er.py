"""Downstream ``er``: emotion recognition; projection, mean pooling, linear over the emotions; accuracy.

SUPERB (s3prl ``downstream/emotion/config.yaml``, IEMOCAP): four classes, projector to 256,
``UtteranceLevel`` with ``MeanPooling``, cross-entropy; Adam at 1e-4, batch 4 with 8 accumulated
(32 per step), 30,000 steps, dev every 1,000, gradient clipping 1; leave-one-session-out over five
folds with 20 % of the training sessions' utterances held out for dev (``valid_ratio: 0.2``); the
reported accuracy is the mean over the folds. Here a corpus with ``meta["folds"]`` (and a
``fold`` per row) is evaluated the same way, fold by fold, over the rows of its train, dev and
test splits; ``max_folds`` evaluates only the first folds (for speed). Without folds the
corpus's own train/dev/test splits are used. Per-item results cover the test rows of every
evaluated fold.

``protocol: embedded``: 200 steps of 32 utterances at 5e-3, dev every 50.
"""

from __future__ import annotations

from dataclasses import replace

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
    "superb": ProbeSettings(steps=30_000, lr=1e-4, batch_size=4, accumulate=8, eval_every=1000),
    "embedded": ProbeSettings(steps=200, lr=5e-3, batch_size=32, eval_every=50),
}


class ERParams(ProbeParams):
    projector_dim: int = 256
    max_folds: int | None = None
    dev_ratio: float = 0.2


class EmotionTask(UtteranceTask):
    name = "er"
    label_field = "emotion"
    use_folds = True


class EmotionRecognition(ProbedDownstream[ERParams]):
    name = "er"
    version = "1"
    summary = "Emotion recognition: projection, mean pooling, linear; accuracy (mean over folds)"
    order = 40
    frame_cache = False  # pooled means
    label_fields = ("emotion",)
    protocols = PROTOCOLS

    def make_task(self, corpus: PreparedCorpus, params: ERParams) -> Task:
        corpus.require(self.label_fields, f"downstream {self.name!r}")
        emotions = corpus.vocab.get("emotions")
        if not emotions:
            emotions = sorted({str(r["emotion"]) for r in task_splits(corpus, "er")["train"]})
        if not emotions:
            raise CorpusError(f"corpus {corpus.name!r} has no emotion classes.")
        return EmotionTask(list(emotions), params.projector_dim)

    def settings(self, params: ERParams) -> ProbeSettings:
        """The protocol's settings with this entry's folds (``max_folds``, ``dev_ratio``)."""
        return replace(super().settings(params), max_folds=params.max_folds, dev_ratio=params.dev_ratio)


@hookimpl
def harness_register_downstream(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(EmotionRecognition)
