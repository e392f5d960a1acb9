"""Downstream ``sd``: speaker diarization of two-speaker recordings; an LSTM over the frames with one
activity output per speaker, trained permutation-invariantly; diarization error rate.

SUPERB (s3prl ``downstream/diarization``, Libri2Mix): labels on 10-ms frames (``frame_shift`` 160
samples); the upstream's frames repeated to that rate (:func:`plugins.downstreams._eend.label_rate_chunks`);
recordings cut into chunks of 2,000 frames; one unidirectional LSTM layer of 512 and a linear layer
to two speaker logits; the permutation-invariant binary cross-entropy; Adam at 1e-4, batch 8 with 4
accumulated, 30,000 steps, dev every 500, gradient clipping 1. Test: the recordings' posteriors
post-processed by a threshold and a median filter; the reported DER is the lowest over thresholds
0.3–0.7 × median lengths 1 and 11, as SUPERB reports it (:mod:`harness.evaluation.diarization`:
overlap scored, no collar). ``thresholds`` and ``medians`` narrow that grid: one of each fixes the
setting in advance.

Where this differs: s3prl extracts features chunk by chunk; here the upstream sees whole recordings
(the frame cache holds them) and its frames are cut into chunks. s3prl batches 8 chunks; here 8
recordings, each as many chunks as it has (one for recordings up to 20 s). s3prl keeps the step best
in dev frame accuracy; here the step best in dev DER. The DER is computed on the label frames, where
dscore reads RTTM segments made from them: equal up to the rounding of reference turns to 10 ms.

Outputs: ``<stage>/sd_test.hyp.rttm`` (the system's turns at the chosen setting, speakers ``spk0`` and
``spk1``) and ``sd_test.ref.rttm``, for dscore or md-eval; the chosen setting is in the metrics extra
(``postprocess``). Per-recording ``[errors, scored frames]`` give the leaderboard's intervals.

``protocol: embedded``: an LSTM of 128, 300 steps of 8 recordings at 2e-3, dev every 50.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from harness import hookimpl
from harness.api import (
    MEDIANS,
    THRESHOLDS,
    Batch,
    CorpusError,
    ErrorCounts,
    EvalResult,
    PreparedCorpus,
    ProbedDownstream,
    ProbeParams,
    ProbeSettings,
    StageContext,
    Task,
    activity,
    decide,
    error_counts,
    frame_count,
    rttm_lines,
    segments,
    turn_speakers,
)

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from harness.api import UpstreamModel

PROTOCOLS = {
    "superb": ProbeSettings(steps=30_000, lr=1e-4, batch_size=8, accumulate=4, eval_every=500, eval_batch_size=8),
    "embedded": ProbeSettings(steps=300, lr=2e-3, batch_size=8, eval_every=50, eval_batch_size=16),
}
#: LSTM width by protocol
HIDDEN_SIZES = {"superb": 512, "embedded": 128}
#: s3prl's sample rate for ``frame_shift``
LABEL_SAMPLE_RATE = 16_000


class SDParams(ProbeParams):
    hidden_size: int | None = Field(None, ge=1, description="LSTM width (None: 512 under superb, 128 embedded)")
    rnn_layers: int = Field(1, ge=0, description="LSTM layers (0: a linear layer on the features)")
    n_speakers: int = Field(2, ge=1, description="speaker outputs (Libri2Mix: 2)")
    chunk_size: int = Field(2000, ge=1, description="label frames per chunk")
    frame_shift: int = Field(160, ge=1, description="label frame shift in samples at 16 kHz")
    thresholds: list[float] = Field(list(THRESHOLDS), min_length=1, description="decision thresholds tried on test")
    medians: list[int] = Field(list(MEDIANS), min_length=1, description="median filter lengths (odd) tried on test")

    @field_validator("medians")
    @classmethod
    def _odd(cls, medians: list[int]) -> list[int]:
        if any(m < 1 or m % 2 == 0 for m in medians):
            raise ValueError("median filter lengths must be odd and at least 1")
        return medians

    @field_validator("thresholds")
    @classmethod
    def _open_unit(cls, thresholds: list[float]) -> list[float]:
        if any(not 0 < t < 1 for t in thresholds):
            raise ValueError("thresholds must lie strictly between 0 and 1")
        return thresholds


class DiarizationTask(Task):
    name = "sd"
    label_fields = ("turns",)
    metrics = {"der": "lower"}
    primary_metric = "der"

    def __init__(self, params: SDParams):
        self.n_speakers = params.n_speakers
        self.hidden_size = params.hidden_size or HIDDEN_SIZES[params.protocol]
        self.rnn_layers = params.rnn_layers
        self.chunk_size = params.chunk_size
        self.frame_seconds = params.frame_shift / LABEL_SAMPLE_RATE
        self.grid = [(t, m) for t in params.thresholds for m in params.medians]
        #: the post-processing setting the last :meth:`aggregate` chose (the test set's, after a probe)
        self.chosen: dict[str, float] = {}

    def build_head(self, input_dim: int) -> nn.Module:
        from plugins.downstreams._eend import DiarizationHead

        return DiarizationHead(input_dim, self.n_speakers, self.hidden_size, self.rnn_layers)

    def reference(self, row: dict[str, Any]) -> np.ndarray:
        """The recording's label frames × ``n_speakers`` 0/1 activity."""
        speakers = turn_speakers(row["turns"])
        if len(speakers) > self.n_speakers:
            raise CorpusError(f"sd: recording {row['id']!r} has {len(speakers)} speakers but the head has "
                              f"{self.n_speakers} outputs; set n_speakers: {len(speakers)}.")
        n = max(1, frame_count(float(row["duration"]), self.frame_seconds))
        return activity(row["turns"], n, self.frame_seconds, self.n_speakers)

    def _logits(self, head: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]],
                                                              list[np.ndarray]]:
        from plugins.downstreams._eend import label_rate_chunks

        assert batch.features is not None and batch.lengths is not None
        references = [self.reference(row) for row in batch.utterances]
        chunks, lengths, spans = label_rate_chunks(batch.features, batch.lengths, [len(r) for r in references],
                                                   self.chunk_size)
        return head(chunks), lengths, spans, references

    def loss(self, head: nn.Module, batch: Batch) -> torch.Tensor:
        import numpy as np
        import torch

        from plugins.downstreams._eend import pit_loss

        logits, lengths, spans, references = self._logits(head, batch)
        labels = np.zeros(tuple(logits.shape), dtype=np.float32)
        for k, (item, start) in enumerate(spans):
            part = references[item][start : start + self.chunk_size]
            labels[k, : len(part)] = part
        return pit_loss(logits, torch.from_numpy(labels).to(logits.device), lengths)

    def predict(self, head: nn.Module, batch: Batch) -> list[dict[str, Any]]:
        import numpy as np

        logits, lengths, spans, references = self._logits(head, batch)
        probs = logits.detach().float().sigmoid().cpu().numpy()
        per_item: list[list[np.ndarray]] = [[] for _ in batch.utterances]
        for k, ((item, _), n) in enumerate(zip(spans, lengths.tolist(), strict=True)):
            per_item[item].append(probs[k, :n])
        return [{"id": row["id"], "ref": row["turns"], "posteriors": np.concatenate(parts), "reference": ref,
                 "stats": {}} for row, parts, ref in zip(batch.utterances, per_item, references, strict=True)]

    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, float]:
        """The lowest DER over the post-processing grid (first in grid order on ties). Each record's
        ``stats`` (``der``: [errors, scored frames]) and ``hyp`` (its turns) are set at that setting, so the
        per-item statistics add up to the reported DER."""
        best: tuple[float, tuple[float, int], list[np.ndarray], list[ErrorCounts]] | None = None
        for threshold, median in self.grid:
            decided = [decide(r["posteriors"], threshold, median) for r in records]
            counts = [error_counts(r["reference"], d) for r, d in zip(records, decided, strict=True)]
            total = sum(counts, ErrorCounts(0, 0, 0, 0))
            der = total.percent(total.errors)
            if best is None or der < best[0]:
                best = (der, (threshold, median), decided, counts)
        assert best is not None
        der, (threshold, median), decided, counts = best
        for record, active, count in zip(records, decided, counts, strict=True):
            record["stats"] = {"der": [count.errors, count.scored]}
            turns = segments(active, self.frame_seconds)
            record["hyp"] = [[f"spk{column}", start, end] for column, start, end in turns]
        self.chosen = {"threshold": threshold, "median": median}
        return {"der": der}


class SpeakerDiarization(ProbedDownstream[SDParams]):
    name = "sd"
    version = "1"
    summary = "Speaker diarization: LSTM, permutation-invariant training; DER (best post-processing on test)"
    order = 38
    label_fields = ("turns",)
    protocols = PROTOCOLS

    def make_task(self, corpus: PreparedCorpus, params: SDParams) -> Task:
        corpus.require(self.label_fields, f"downstream {self.name!r}")
        return DiarizationTask(params)

    def evaluate(self, upstream: UpstreamModel, corpus: PreparedCorpus, params: SDParams,
                 ctx: StageContext) -> EvalResult:
        from harness.api import probe_corpus

        task = self.make_task(corpus, params)
        assert isinstance(task, DiarizationTask)
        result = probe_corpus(task, upstream, corpus, self.settings(params), ctx)
        result.extra["postprocess"] = task.chosen
        ctx.log(f"sd: DER {result.metrics['der']:.2f} % at threshold {task.chosen['threshold']} and median "
                f"{task.chosen['median']}")
        for kind in ("ref", "hyp"):
            lines = [line for p in result.predictions for line in rttm_lines(str(p["id"]), p[kind])]
            (ctx.out_dir / f"sd_test.{kind}.rttm").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        return result


@hookimpl
def harness_register_downstream(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(SpeakerDiarization)
