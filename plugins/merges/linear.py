"""Linear merge: θ = θ0 + α · mean_i(θi − θ0) (Speech-FT's weight-space interpolation, Eq. 1 and 3).

α = 0 is the pre-trained model, α = 1 the fine-tuned model (Stable-FT) or, with several models,
their plain average. Integer buffers and pre-training-only heads are copied from θ0
(:mod:`harness.merging.engine`). A configuration of the task-arithmetic family
(:class:`harness.api.TaskVectorMerge`).
"""

from __future__ import annotations

from pydantic import Field

from harness import hookimpl
from harness.api import PluginParams, TaskVectorMerge, TaskVectorMergePlugin


class LinearParams(PluginParams):
    alpha: float = Field(0.25, description="interpolation weight of the fine-tuned models (0: θ0, 1: θft)")


class LinearMerge(TaskVectorMergePlugin[LinearParams]):
    name = "linear"
    version = "1"
    summary = "θ0 + α·mean(θi − θ0): Speech-FT interpolation (α = 0: pre-trained, α = 1: fine-tuned)"
    mode = "each"

    def method(self, params: LinearParams) -> TaskVectorMerge:
        return TaskVectorMerge.interpolation(params.alpha)


@hookimpl
def harness_register_merge(registry):
    registry.add(LinearMerge)
