"""Task arithmetic: θ = θ0 + scale · Σᵢ (θᵢ − θ0)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness import hookimpl
from harness.api import MergePlugin, PluginParams

if TYPE_CHECKING:  # torch is imported where a merge runs: `harness plugins` stays quick
    import torch


class TaskArithmeticParams(PluginParams):
    scale: float = 0.3


class TaskArithmetic(MergePlugin[TaskArithmeticParams]):
    name = "task_arithmetic"
    version = "1"
    summary = "Task arithmetic: θ0 + scale · sum of task vectors"

    def merge_tensor(self, name: str, base: torch.Tensor, finetuned: list[torch.Tensor],
                     params: TaskArithmeticParams, state: None) -> torch.Tensor:
        import torch

        delta = torch.stack([t.to(torch.float32) - base.to(torch.float32) for t in finetuned]).sum(0)
        return (base.to(torch.float32) + params.scale * delta).to(base.dtype)


@hookimpl
def harness_register_merge(registry):
    registry.add(TaskArithmetic)
