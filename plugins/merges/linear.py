"""Linear merge: θ = θ0 + α · mean_i(θi − θ0) (Speech-FT's weight-space interpolation, Eq. 1 and 3).

α = 0 is the pre-trained model, α = 1 the fine-tuned model (Stable-FT) or, with several models,
their plain average. Integer buffers and pre-training-only heads are copied from θ0
(:mod:`harness.merging.engine`).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from harness import hookimpl
from harness.core.interfaces import MergePlugin, PluginParams
from harness.merging.engine import interpolation_shortcut


class LinearParams(PluginParams):
    alpha: float = Field(0.25, description="interpolation weight of the fine-tuned models (0: θ0, 1: θft)")


def interpolate(base: torch.Tensor, finetuned: list[torch.Tensor], alpha: float) -> torch.Tensor:
    """θ0 + α · mean_i(θi − θ0), as ``torch.lerp`` from θ0 to the mean, which is exact at α = 0 and 1."""
    mean = finetuned[0] if len(finetuned) == 1 else torch.stack(finetuned).mean(0)
    return torch.lerp(base, mean, alpha)


class LinearMerge(MergePlugin):
    name = "linear"
    version = "1"
    summary = "θ0 + α·mean(θi − θ0): Speech-FT interpolation (α = 0: pre-trained, α = 1: fine-tuned)"
    Params = LinearParams
    mode = "each"

    def merge_tensor(
        self, name: str, base: torch.Tensor, finetuned: list[torch.Tensor], params: LinearParams
    ) -> torch.Tensor:
        return interpolate(base, finetuned, params.alpha)

    def shortcut(self, params: LinearParams, n_models: int) -> Literal["base", "model"] | None:
        return interpolation_shortcut(params.alpha, n_models)


@hookimpl
def harness_register_merge(registry):
    registry.add(LinearMerge)
