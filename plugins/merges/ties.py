"""TIES merging (Yadav et al., 2023): trim, elect sign, disjoint merge.

For task vectors τi = θi − θ0:

1. *Trim*: keep each τi's ``density`` share of largest magnitudes, zero the rest — over the whole
   model (``scope: model``, the paper's way; a pre-pass finds each model's threshold) or per
   tensor (``scope: tensor``, as mergekit does). The share is rounded to the nearest entry
   (mergekit floors it; the paper's code keeps one more), and counts every parameter, frozen ones
   (the CNN, whose τ is zero) included.
2. *Elect*: each parameter's sign is the sign of the summed trimmed values (mass, not a vote;
   a zero sum counts as positive, as in mergekit).
3. *Disjoint merge*: average only the non-zero trimmed values whose sign agrees with the elected one.

θ = θ0 + λ · τ_merged. Speech-FT's TIES variant (Table 4) interpolates the merged task vector
with the pre-trained model, i.e. ``lambda`` = α = 0.25; ``lambda: 1`` is plain TIES. A
configuration of the task-arithmetic family (:meth:`harness.api.TaskVectorMerge.ties`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from harness import hookimpl
from harness.api import PluginParams, TaskVectorMerge, TaskVectorMergePlugin


class TiesParams(PluginParams):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    density: float = Field(0.2, gt=0, le=1, description="share of each task vector's magnitudes kept")
    scope: Literal["model", "tensor"] = Field("model", description="where the top-density share is taken")
    lambda_: float = Field(1.0, alias="lambda", description="scale of the merged task vector")


class TiesMerge(TaskVectorMergePlugin[TiesParams]):
    name = "ties"
    version = "1"
    summary = "TIES merging: trim to top density, elect sign by mass, disjoint mean, scale by lambda"
    mode = "group"

    def method(self, params: TiesParams) -> TaskVectorMerge:
        return TaskVectorMerge.ties(params.density, params.scope, params.lambda_)


@hookimpl
def harness_register_merge(registry):
    registry.add(TiesMerge)
