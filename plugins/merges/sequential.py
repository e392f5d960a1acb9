"""Sequential Speech-FT (Section 2.3): for tasks t1..tn in order, fine-tune the current model on
ti, then θi = θ(i−1) + α · (θft_i − θ(i−1)).

The planner expands this plugin (``mode = "chain"``) into finetune -> merge links, each an
ordinary stage cached on its own; the recipe lists the fine-tuning entries in order under
``models`` (the paper's order: PR on LibriSpeech, then SID on VoxCeleb1). This plugin merges one
link: its base is the previous link's model and its one fine-tuned model started from that base,
interpolated as the linear merge does (:meth:`harness.api.TaskVectorMerge.interpolation`).
"""

from __future__ import annotations

from pydantic import Field

from harness import hookimpl
from harness.api import PluginParams, StageError, TaskVectorMerge, TaskVectorMergePlugin, TensorSource, TrimThresholds


class SequentialParams(PluginParams):
    alpha: float = Field(0.25, description="interpolation weight of each link's fine-tuned model")


class SequentialMerge(TaskVectorMergePlugin[SequentialParams]):
    name = "sequential"
    version = "1"
    summary = "Sequential Speech-FT: fine-tune, interpolate with α, next task (expanded into a chain)"
    mode = "chain"

    def method(self, params: SequentialParams) -> TaskVectorMerge:
        return TaskVectorMerge.interpolation(params.alpha)

    def prepare(
        self, base: TensorSource, finetuned: list[TensorSource], params: SequentialParams
    ) -> TrimThresholds | None:
        if len(finetuned) != 1:
            raise StageError(
                f"a sequential link merges exactly one fine-tuned model with the previous link, got {len(finetuned)}."
            )
        return super().prepare(base, finetuned, params)


@hookimpl
def harness_register_merge(registry):
    registry.add(SequentialMerge)
