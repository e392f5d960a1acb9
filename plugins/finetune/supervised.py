"""Supervised stable fine-tuning on one downstream task (Speech-FT, Section 4.1).

The task object (labels, head, loss, metric) is the downstream plugin's own
(:meth:`DownstreamPlugin.make_task`), trained here on the upstream's *last* hidden state with the
upstream trainable. ``task: pc`` is frame-level phone classification with cross-entropy
(:mod:`harness.frame_phones`; needs phone alignments). The best dev checkpoint is kept.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from harness import hookimpl
from harness.batching import DynamicBatchSampler
from harness.interfaces import FinetunePlugin, UpstreamModel
from harness.manifest import PreparedCorpus
from harness.stable_ft import (
    StableFineTuning,
    StableFTParams,
    evaluate_task,
    make_task,
    pick_corpus,
    split_rows,
    task_batch,
    train_config,
)
from harness.stage import StageContext
from harness.train import fit
from harness.waveforms import WaveBatch, WaveformSet


class SupervisedParams(StableFTParams):
    task: str = Field(description="a downstream plugin name (pr, asr, sid, er, sf) or pc")
    corpus: str | None = Field(None, description="the recipe corpus to fine-tune on")
    task_params: dict[str, Any] = Field(default_factory=dict, description="the downstream's parameters")


class Supervised(FinetunePlugin):
    name = "supervised"
    version = "1"
    summary = "Stable fine-tuning on a downstream task's head, loss and data (PR, ASR, SID, ER, SF, PC)"
    Params = SupervisedParams

    def finetune(
        self, upstream: UpstreamModel, corpora: dict[str, PreparedCorpus], params: SupervisedParams, ctx: StageContext
    ) -> dict[str, float]:
        corpus = pick_corpus(corpora, params.corpus, f"supervised fine-tuning on {params.task}")
        task = make_task(upstream, corpus, params.task, params.task_params, ctx)
        device = ctx.device
        train = WaveformSet(split_rows(corpus, params.task, "train"), params.max_seconds)
        dev = WaveformSet(split_rows(corpus, params.task, "dev", params.dev_items), params.max_seconds)
        head = task.build_head(upstream.hidden_size)
        stable = StableFineTuning(upstream, head, params)
        stable.model.to(device)

        def loss_fn(batch: WaveBatch):
            batch = batch.to(device)
            out = stable.forward(batch.wavs, batch.wav_lengths)
            return task.loss(head, task_batch(out, batch.rows)) + stable.penalty()

        def evaluate() -> dict[str, float]:
            return evaluate_task(stable.forward, head, task, dev, params.batch_seconds, device)

        sampler = DynamicBatchSampler(train.lengths, params.batch_seconds, ctx.seed, max_items=params.max_items)
        primary = (task.primary_metric, task.metrics[task.primary_metric])
        result = fit(
            stable.model,
            loss_fn,
            sampler,
            train.collate,
            train_config(params),
            ctx,
            evaluate,
            primary,
            stable.before_step,
        )
        ctx.log(f"fine-tuned on {params.task}: best dev {result.best_metrics} at step {result.best_step}")
        return result.best_metrics


@hookimpl
def harness_register_finetune(registry):
    registry.add(Supervised)
