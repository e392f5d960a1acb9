"""Supervised stable fine-tuning on one downstream task (Speech-FT, Section 4.1).

The task object (labels, head, loss, metric) is the downstream plugin's own
(:meth:`DownstreamPlugin.make_task`), trained here on the upstream's *last* hidden state with the
upstream trainable. ``task: pc`` is frame-level phone classification with cross-entropy
(:mod:`harness.evaluation.frame_phones`; needs phone alignments). The best dev checkpoint is kept.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from harness import hookimpl
from harness.core.interfaces import FinetunePlugin, UpstreamModel
from harness.core.manifest import PreparedCorpus
from harness.core.stage import StageContext
from harness.training.stable_ft import StableFTParams, finetune_on_task, make_task, pick_corpus


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
        result = finetune_on_task(upstream, task, corpus, params.task, params, ctx,
                                  (task.primary_metric, task.metrics[task.primary_metric]))
        ctx.log(f"fine-tuned on {params.task}: best dev {result.best_metrics} at step {result.best_step}")
        return result.best_metrics


@hookimpl
def harness_register_finetune(registry):
    registry.add(Supervised)
