"""Downstream ``asr``: character CTC speech recognition; WER (jiwer), or with ``metric: cer`` the character error
rate, for a language written without spaces between words (the paper's Mandarin ASR reports CER).

The vocabulary is built from the training transcriptions' characters, as in the wav2vec 2.0 CTC
fine-tuning guide (space is the word delimiter; ``<unk>`` for characters unseen in training);
greedy CTC decoding; WER = word edits (jiwer) summed over the set over the summed reference words; CER =
character edits (spaces normalised to one) over the summed reference characters.

SUPERB (s3prl ``downstream/asr/config.yaml``, LibriSpeech 100 h): projector to 1024, a 2-layer
bidirectional LSTM of 1024 units with dropout 0.2, linear to the characters; Adam at 1e-4,
batch 32 as s3prl buckets it (sorted by audio length, cut into buckets of 32, each halved:
16 utterances a step; :class:`harness.data.batching.SortedBucketSampler`), 200,000 steps, dev every
2,000, gradient clipping 1; SpecAugment on the weighted-sum features while training
(:mod:`harness.training.specaug`; ``protocol: superb``); best on dev WER; no language model
(s3prl's default decoding has none either).

Both protocols (``superb`` and the scaled-down ``embedded``, too short on the embedded corpus for
character CTC to emerge) are in :mod:`harness.evaluation.ctc_probe`, shared with ``sf``; only the
sorted batches differ (:data:`PROTOCOLS`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

from pydantic import Field

from harness import hookimpl
from harness.api import (
    CTC_PROTOCOLS,
    CTCProbeParams,
    CTCTask,
    PreparedCorpus,
    ProbedDownstream,
    SpecAugSettings,
    Task,
    cer_stats,
    char_vocab,
    task_splits,
    wer_stats,
)

UNK = "<unk>"
#: the CTC protocols with s3prl's ASR bucketing (fixed buckets by audio length, halved) wherever
#: batches are sorted: under superb, or with ``sorted_batches: true``
PROTOCOLS = {name: replace(settings, bucketing="buckets") for name, settings in CTC_PROTOCOLS.items()}


class ASRParams(CTCProbeParams):
    """The CTC probe's parameters (:mod:`harness.evaluation.ctc_probe`) and the error rate reported."""

    # left out of the dumped parameters (and so of the stage key) at its default: existing keys stay as they were
    metric: Literal["wer", "cer"] = Field(
        "wer", exclude_if=lambda m: m == "wer",
        description="wer: word error rate; cer: character error rate (languages without spaces between words)")


class SpeechRecognitionTask(CTCTask):
    name = "asr"
    label_fields = ("text",)
    metrics = {"wer": "lower"}
    primary_metric = "wer"

    def __init__(
        self,
        chars: list[str],
        project_dim: int,
        lstm_dims: tuple[int, ...],
        downsample: int = 1,
        specaug: SpecAugSettings | None = None,
        metric: str = "wer",
    ):
        super().__init__([*chars, UNK], project_dim, lstm_dims, downsample=downsample, specaug=specaug)
        self.metrics = {metric: "lower"}
        self.primary_metric = metric

    def target(self, row: dict[str, Any]) -> list[int]:
        unk = self.index[UNK]
        return [self.index.get(c, unk) for c in " ".join(str(row.get("text", "")).split())]

    def render(self, ids: list[int]) -> str:
        return "".join(self.vocab[i] for i in ids)

    def item_stats(self, ref: str, hyp: str) -> dict[str, list[float]]:
        if self.primary_metric == "cer":
            return {"cer": cer_stats(" ".join(ref.split()), " ".join(hyp.split()))}
        return {"wer": wer_stats(ref, hyp)}


class SpeechRecognition(ProbedDownstream[ASRParams]):
    name = "asr"
    version = "2"
    summary = "Speech recognition: character CTC, BiLSTM head; WER (or CER)"
    order = 20
    label_fields = ("text",)
    protocols = PROTOCOLS

    def make_task(self, corpus: PreparedCorpus, params: ASRParams) -> Task:
        train = task_splits(corpus, "asr")["train"]
        return SpeechRecognitionTask(
            char_vocab([" ".join(str(r.get("text", "")).split()) for r in train]),
            *params.head_shape(),
            specaug=params.specaug_settings(),
            metric=params.metric,
        )


@hookimpl
def harness_register_downstream(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(SpeechRecognition)
