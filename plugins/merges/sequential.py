"""Sequential Speech-FT (Section 2.3): for tasks t1..tn in order, fine-tune the current model on
ti, then θi = θ(i−1) + α · (θft_i − θ(i−1)).

The planner expands this plugin (``mode = "chain"``) into finetune -> merge links, each an
ordinary stage cached on its own; the recipe lists the fine-tuning entries in order under
``models`` (the paper's order: PR on LibriSpeech, then SID on VoxCeleb1). This plugin merges one
link: its base is the previous link's model and its one fine-tuned model started from that base.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from harness import hookimpl
from harness.core.errors import StageError
from harness.core.interfaces import MergePlugin, PluginParams
from harness.merging.engine import interpolation_shortcut


class SequentialParams(PluginParams):
    alpha: float = Field(0.25, description="interpolation weight of each link's fine-tuned model")


class SequentialMerge(MergePlugin):
    name = "sequential"
    version = "1"
    summary = "Sequential Speech-FT: fine-tune, interpolate with α, next task (expanded into a chain)"
    Params = SequentialParams
    mode = "chain"

    def merge_tensor(
        self, name: str, base: torch.Tensor, finetuned: list[torch.Tensor], params: SequentialParams
    ) -> torch.Tensor:
        if len(finetuned) != 1:
            raise StageError(
                f"a sequential link merges exactly one fine-tuned model with the previous link, got {len(finetuned)}."
            )
        return torch.lerp(base, finetuned[0], params.alpha)  # exact at α = 0 and α = 1

    def shortcut(self, params: SequentialParams, n_models: int) -> Literal["base", "model"] | None:
        return interpolation_shortcut(params.alpha, n_models)


@hookimpl
def harness_register_merge(registry):
    registry.add(SequentialMerge)
