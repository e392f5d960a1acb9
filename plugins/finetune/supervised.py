"""Supervised stable fine-tuning on one downstream task (Speech-FT, Section 4.1).

The task object (labels, head, loss, metric) is a task plugin's (``task: pc``, frame-level phone
classification, needs phone alignments) or a downstream plugin's own
(:meth:`DownstreamPlugin.make_task`), trained here on the upstream's *last* hidden state with the
upstream trainable. The best dev checkpoint is kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from harness import hookimpl
from harness.api import (
    FinetunePlugin,
    FinetuneResult,
    PreparedCorpus,
    StableFTParams,
    StageContext,
    pick_corpus,
    resolve_task,
)

if TYPE_CHECKING:
    from harness.api import UpstreamModel


class SupervisedParams(StableFTParams):
    task: str = Field(description="a downstream plugin name (pr, asr, sid, er, sf) or pc")
    corpus: str | None = Field(None, description="the recipe corpus to fine-tune on")
    task_params: dict[str, Any] = Field(default_factory=dict, description="the downstream's parameters")


class Supervised(FinetunePlugin[SupervisedParams]):
    name = "supervised"
    version = "1"
    summary = "Stable fine-tuning on a downstream task's head, loss and data (PR, ASR, SID, ER, SF, PC)"

    def finetune(
        self, upstream: UpstreamModel, corpora: dict[str, PreparedCorpus], params: SupervisedParams, ctx: StageContext
    ) -> FinetuneResult:
        from harness.api import finetune_on_task  # torch: loaded when the scenario trains

        corpus = pick_corpus(corpora, params.corpus, f"supervised fine-tuning on {params.task}")
        task = resolve_task(upstream, corpus, params.task, params.task_params, ctx)
        result = finetune_on_task(upstream, task, corpus, params.task, params, ctx,
                                  (task.primary_metric, task.metrics[task.primary_metric]))
        ctx.log(f"fine-tuned on {params.task}: best dev {result.best_metrics} at step {result.best_step}")
        return FinetuneResult(result.best_metrics, dict(task.metrics))


@hookimpl
def harness_register_finetune(registry):
    registry.add(Supervised)
