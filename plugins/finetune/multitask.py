"""Multitask stable fine-tuning (MTF, Speech-FT Section 2.3 and Table 4): one head per task, trained
jointly on mixed batches.

Every optimizer step draws one batch from each task's training data (the paper: 2 utterances of PR
on LibriSpeech and 2 of SID on VoxCeleb1 per step); the waveforms of all tasks go through the
upstream in one padded forward pass, each head sees its own rows of the last hidden state, and the
loss is the weighted sum of the task losses. Stable fine-tuning applies to the shared upstream.
The dev checkpoint is selected on the primary metric of ``select_on`` (default: the first task);
all tasks' dev metrics are reported as ``<task>.<metric>``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from harness import hookimpl
from harness.api import FinetunePlugin, FinetuneResult, PluginParams, PreparedCorpus, StableFTParams, StageContext

if TYPE_CHECKING:
    from harness.api import UpstreamModel


class TaskSpec(PluginParams):
    task: str = Field(description="a downstream plugin name or pc")
    corpus: str | None = Field(None, description="the recipe corpus of this task")
    weight: float = Field(1.0, ge=0, description="weight of this task's loss")
    batch_seconds: float | None = Field(None, gt=0, description="padded seconds per batch of this task")
    max_items: int | None = Field(None, ge=1)
    task_params: dict[str, Any] = Field(default_factory=dict)


class MultitaskParams(StableFTParams):
    tasks: list[TaskSpec] = Field(min_length=1, description="the tasks trained jointly")
    select_on: str | None = Field(None, description="task whose primary dev metric selects the checkpoint")


class Multitask(FinetunePlugin[MultitaskParams]):
    name = "multitask"
    version = "1"
    summary = "Multitask stable fine-tuning (MTF): one head per task on mixed batches"

    def finetune(
        self, upstream: UpstreamModel, corpora: dict[str, PreparedCorpus], params: MultitaskParams, ctx: StageContext
    ) -> FinetuneResult:
        from plugins.finetune._multitask import run  # torch: loaded when the scenario trains

        return run(upstream, corpora, params, ctx)


@hookimpl
def harness_register_finetune(registry):
    registry.add(Multitask)
