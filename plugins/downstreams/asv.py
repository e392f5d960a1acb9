"""Downstream ``asv``: automatic speaker verification; an x-vector head trained with AM-softmax on the
training speakers, trials scored by the cosine of embeddings; equal error rate.

SUPERB (s3prl ``downstream/sv_voxceleb1``, VoxCeleb1): connector to 512, x-vector TDNN to 1500,
statistics pooling, utterance extractor (:mod:`plugins.downstreams._xvector`); AM-softmax with
``s`` 30 and margin 0.4; AdamW at 5e-5 (weight decay 0.01, torch's default), batch 256 with 2
accumulated, 200,000 steps, gradient clipping 1 (``configs/amsoftmax.yaml``). Test: the official
trial list, cosine scores, EER (:mod:`harness.evaluation.verification`).

Where this differs: s3prl crops each training utterance to a random 8 s window and leaves out
training utterances under 2 s; here training uses whole utterances (the corpus decides what it
holds). s3prl scores every saved checkpoint on the test trials and reports the best; here the
checkpoint is chosen by the dev trials' EER, as every other task chooses on dev.

Trials: the corpus's ``<split>.trials`` where it has them (``meta["trials"]``: VoxCeleb1's list),
otherwise every pair of the split's utterances (at most ``max_trials``, a seeded sample beyond),
labelled by speaker. The embedded corpus tests on its unseen voices (``test_unseen``). The stage writes
the test trials and their scores (``asv_test.trials``, ``asv_test.scores``, which ``harness eer``
reads) and the minimum detection costs at p_target 0.01 and 0.05 beside the EER. The per-item
results are the trials (label, score and enrolment speaker), so the leaderboard's interval and paired
comparisons of the EER resample speakers with all their trials (trials that share a speaker are not
independent).

``protocol: embedded``: connector 64, statistics of 128, 300 steps of 16 utterances at 2e-3, dev
every 100.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from harness import hookimpl
from harness.api import (
    Batch,
    CorpusError,
    EvalResult,
    PreparedCorpus,
    ProbedDownstream,
    ProbeParams,
    ProbeSettings,
    Task,
    Trial,
    all_pairs,
    equal_error_rate,
    min_dcf,
    read_trials,
    task_splits,
    write_scores,
    write_trials,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

    from harness.api import StageContext, UpstreamModel

PROTOCOLS = {
    "superb": ProbeSettings(steps=200_000, lr=5e-5, batch_size=256, accumulate=2, eval_every=10_000,
                            weight_decay=0.01, decay_every_parameter=True),  # amsoftmax.yaml: torch's AdamW
    "embedded": ProbeSettings(steps=300, lr=2e-3, batch_size=16, eval_every=100),
}
#: head sizes by protocol: (connector, statistics dimension)
HEAD_SIZES = {"superb": (512, 1500), "embedded": (64, 128)}


class ASVParams(ProbeParams):
    connector_dim: int | None = Field(None, ge=1, description="connector width (None: 512 under superb, 64 embedded)")
    agg_dim: int | None = Field(None, ge=1, description="TDNN output width (None: 1500 under superb, 128 embedded)")
    margin: float = Field(0.4, ge=0, description="AM-softmax margin")
    scale: float = Field(30.0, gt=0, description="AM-softmax scale")
    max_trials: int = Field(200_000, ge=1, description="trials drawn when a split has no trial list")


class VerificationTask(Task):
    name = "asv"
    label_fields = ("speaker",)
    metrics = {"eer": "lower"}
    primary_metric = "eer"

    def __init__(self, speakers: list[str], trials: dict[str, list[Trial]], params: ASVParams):
        self.speakers = speakers
        self.index = {s: i for i, s in enumerate(speakers)}
        self.trials = trials  # split name -> the corpus's trial list
        connector, agg = HEAD_SIZES[params.protocol]
        self.connector_dim, self.agg_dim = params.connector_dim or connector, params.agg_dim or agg
        self.margin, self.scale, self.max_trials = params.margin, params.scale, params.max_trials

    def build_head(self, input_dim: int) -> nn.Module:
        from plugins.downstreams._xvector import XVectorHead

        return XVectorHead(input_dim, len(self.speakers), self.connector_dim, self.agg_dim, self.scale, self.margin)

    def loss(self, head: nn.Module, batch: Batch) -> torch.Tensor:
        import torch

        assert batch.features is not None and batch.lengths is not None
        labels = torch.tensor([self.index[str(r["speaker"])] for r in batch.utterances], device=batch.features.device)
        return head.am_softmax(head(batch.features, batch.lengths), labels)

    def predict(self, head: nn.Module, batch: Batch) -> list[dict[str, Any]]:
        assert batch.features is not None and batch.lengths is not None
        vectors = head.embed(batch.features, batch.lengths).float().cpu().numpy()
        return [{"id": r["id"], "ref": str(r["speaker"]), "hyp": None, "embedding": v, "stats": {}}
                for r, v in zip(batch.utterances, vectors, strict=True)]

    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, float]:
        """The EER over the trials among ``records`` (see :meth:`trial_scores`)."""
        trials, scores = self.trial_scores(records)
        return {"eer": equal_error_rate([label for label, _, _ in trials], scores)}

    def scored_items(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One item per trial, its label, score and group (the enrolment utterance's speaker): the
        bootstrap of the EER draws speakers with all their trials."""
        trials, scores = self.trial_scores(records)
        speaker = {r["id"]: r["ref"] for r in records}
        return [{"id": f"{a} {b}", "stats": {"eer": {"target": label, "score": float(s), "group": speaker[a]}}}
                for (label, a, b), s in zip(trials, scores, strict=True)]

    def trial_scores(self, records: list[dict[str, Any]]) -> tuple[list[Trial], np.ndarray]:
        """The trials among ``records`` and their cosine scores: the corpus's list for their split (its
        trials whose two utterances are both there), or else every pair of them."""
        vectors = {r["id"]: r["embedding"] for r in records}
        listed = max(self.trials.values(), key=lambda t: sum(a in vectors for _, a, _ in t), default=[])
        trials = [t for t in listed if t[1] in vectors and t[2] in vectors]
        if not trials:
            trials = all_pairs({r["id"]: r["ref"] for r in records}, self.max_trials)
        labels = [label for label, _, _ in trials]
        if len(set(labels)) < 2:
            kind = "same-speaker" if 1 not in labels else "different-speaker"
            raise CorpusError(f"asv: the trials over these {len(records)} utterances hold no {kind} pair; the dev "
                              "and test splits need several utterances of each of several speakers.")
        enrol = np.stack([vectors[a] for _, a, _ in trials])
        test = np.stack([vectors[b] for _, _, b in trials])
        return trials, (enrol * test).sum(axis=1)  # cosine: the embeddings have unit length


class SpeakerVerification(ProbedDownstream[ASVParams]):
    name = "asv"
    version = "2"
    summary = "Speaker verification: x-vector head, AM-softmax, cosine scoring; EER"
    order = 35
    label_fields = ("speaker",)
    protocols = PROTOCOLS

    def make_task(self, corpus: PreparedCorpus, params: ASVParams) -> Task:
        corpus.require(self.label_fields, f"downstream {self.name!r}")
        speakers = sorted({str(r["speaker"]) for r in task_splits(corpus, self.name)["train"]})
        if len(speakers) < 2:
            raise CorpusError(f"corpus {corpus.name!r} has fewer than two training speakers; asv trains on many.")
        files = corpus.meta.get("trials", {})
        trials = {}
        for role in ("dev", "test"):
            split = corpus.split_for(self.name, role)
            if split in files:
                trials[split] = read_trials(corpus.root / files[split])
        return VerificationTask(speakers, trials, params)

    def evaluate(self, upstream: UpstreamModel, corpus: PreparedCorpus, params: ASVParams,
                 ctx: StageContext) -> EvalResult:
        """The probe's result, with the minimum detection costs (p_target 0.01 and VoxSRC's 0.05) and the
        test trials and their scores written for other scorers (``harness eer`` reads them)."""
        result = super().evaluate(upstream, corpus, params, ctx)
        trials: list[Trial] = []
        for item in result.items:  # ids are "<enrolment id> <test id>" (see scored_items)
            enrol, test = item["id"].split(" ")
            trials.append((int(item["stats"]["eer"]["target"]), enrol, test))
        scores = [item["stats"]["eer"]["score"] for item in result.items]
        labels = [label for label, _, _ in trials]
        result.extra["min_dcf"] = {str(p): min_dcf(labels, scores, p) for p in (0.01, 0.05)}
        write_trials(ctx.out_dir / "asv_test.trials", trials)
        write_scores(ctx.out_dir / "asv_test.scores", trials, scores)
        return result


@hookimpl
def harness_register_downstream(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(SpeakerVerification)
