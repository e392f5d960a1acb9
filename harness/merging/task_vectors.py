"""The task-arithmetic family: every built-in merge is one configuration of :class:`TaskVectorMerge`.

With task vectors τi = θi − θ0 (θ0 pre-trained, θi fine-tuned from it):

    θ = θ0 + scale · combine(trim(τ1), ..., trim(τn))

- *trim* (optional, ``density``): keep each τi's ``density`` share of largest magnitudes and zero
  the rest, over the whole model (``trim_scope="model"``: thresholds found by a pre-pass,
  :meth:`TaskVectorMerge.prepare`) or per tensor (``"tensor"``);
- *combine*: the mean of the (trimmed) task vectors, or with ``elect_sign`` TIES' sign election
  (each parameter's sign is that of the summed values, a zero sum counting as positive) followed by
  the mean of the non-zero values that agree with it (the disjoint mean).

Configurations in use:

=====================  ======================================================================
linear (Speech-FT)     ``TaskVectorMerge.interpolation(α)``: θ0 + α · mean(τi); one model gives
                       θ = (1 − α)·θ0 + α·θft (α = 0: θ0, α = 1: θft)
sequential             the same interpolation, one fine-tuned model per link of a chain
TIES                   ``TaskVectorMerge.ties(density, scope, λ)``: trim, elect sign, disjoint mean
=====================  ======================================================================

The tensor maths lives in :mod:`harness.merging.task_vector_ops`, imported when a merge runs.

Without trimming or sign election, θ0 + α · mean(τi) is computed as ``torch.lerp`` from θ0 to the
mean of the θi, which is exact at α = 0 and α = 1; otherwise as θ0 + scale · τ_merged.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from harness.core.interfaces import MergePlugin, TensorSource
from harness.core.plugin import P

if TYPE_CHECKING:
    import torch

log = logging.getLogger("harness.merging")

__all__ = ["TaskVectorMerge", "TaskVectorMergePlugin", "TrimThresholds", "interpolation_shortcut"]


def interpolation_shortcut(alpha: float, n_models: int) -> Literal["base", "model"] | None:
    """For merges θ0 + α·(θft − θ0): α = 0 is θ0 itself, α = 1 with one model is that model."""
    if alpha == 0.0:
        return "base"
    if alpha == 1.0 and n_models == 1:
        return "model"
    return None


@dataclass(frozen=True)
class TrimThresholds:
    """Each fine-tuned model's magnitude threshold over all merged tensors (model-scope trimming):
    the state :meth:`TaskVectorMerge.prepare` returns and every tensor's merge reads."""

    per_model: tuple[float, ...]


@dataclass(frozen=True)
class TaskVectorMerge:
    """One configuration of the family: θ = θ0 + ``scale`` · combine(trim(τ1..τn)).

    ``density``: share of each task vector's largest magnitudes kept (None: no trimming);
    ``trim_scope``: where that share is taken ("model" or "tensor"); ``elect_sign``: combine by
    sign election and disjoint mean (TIES) instead of the plain mean.
    """

    scale: float
    density: float | None = None
    trim_scope: Literal["model", "tensor"] = "model"
    elect_sign: bool = False

    @classmethod
    def interpolation(cls, alpha: float) -> TaskVectorMerge:
        """Speech-FT's θ0 + α · mean(θi − θ0) (linear merge; a sequential link).

        α outside [0, 1] is allowed: it extrapolates beyond the two models, and the log says so.
        """
        if not 0.0 <= alpha <= 1.0:
            log.info("alpha %g lies outside [0, 1]: the merge extrapolates past the %s model.", alpha,
                     "fine-tuned" if alpha > 1 else "pre-trained")
        return cls(scale=alpha)

    @classmethod
    def ties(cls, density: float, scope: Literal["model", "tensor"], lambda_: float) -> TaskVectorMerge:
        """TIES (Yadav et al., 2023): trim to ``density``, elect sign by mass, disjoint mean, scale by λ."""
        return cls(scale=lambda_, density=density, trim_scope=scope, elect_sign=True)

    @property
    def is_interpolation(self) -> bool:
        """No trimming and no sign election: a plain interpolation towards the mean model."""
        return self.density is None and not self.elect_sign

    def prepare(self, base: TensorSource, finetuned: list[TensorSource]) -> TrimThresholds | None:
        """Model-scope trimming: each task vector's threshold over all tensors of ``base``, reading one
        model's magnitudes at a time. None when nothing needs a whole-model pass."""
        if self.density is None or self.trim_scope != "model":
            return None
        from harness.merging.task_vector_ops import model_thresholds  # torch, loaded when a merge runs

        return TrimThresholds(model_thresholds(base, finetuned, self.density))

    def merge(self, base: torch.Tensor, finetuned: list[torch.Tensor], state: TrimThresholds | None) -> torch.Tensor:
        """The merged value of one tensor; ``state`` is what :meth:`prepare` returned."""
        import torch

        from harness.merging.task_vector_ops import elect_and_merge, trim

        if self.is_interpolation and len(finetuned) == 1:  # lerp: exactly θ0 at α = 0 and θft at α = 1
            return torch.lerp(base, finetuned[0], self.scale)
        deltas = torch.stack([t - base for t in finetuned])  # a tensor no model changed stays exactly θ0
        if self.is_interpolation:
            return base + self.scale * deltas.mean(0)
        if self.density is not None:
            deltas = trim(deltas, self.density, self.trim_scope, state.per_model if state is not None else None)
        combined = elect_and_merge(deltas) if self.elect_sign else deltas.mean(0)
        return base + self.scale * combined

    def shortcut(self, n_models: int) -> Literal["base", "model"] | None:
        """When the merge is θ0 or the single fine-tuned model unchanged (interpolations only)."""
        return interpolation_shortcut(self.scale, n_models) if self.is_interpolation else None


class TaskVectorMergePlugin(MergePlugin[P]):
    """A merge plugin that is a configuration of the family: it only maps its params to a
    :class:`TaskVectorMerge` (:meth:`method`); preparing, merging and shortcuts follow from it."""

    @abstractmethod
    def method(self, params: P) -> TaskVectorMerge:
        """The configuration ``params`` describe."""

    def prepare(self, base: TensorSource, finetuned: list[TensorSource], params: P) -> TrimThresholds | None:
        return self.method(params).prepare(base, finetuned)

    def merge_tensor(
        self, name: str, base: torch.Tensor, finetuned: list[torch.Tensor], params: P, state: TrimThresholds | None
    ) -> torch.Tensor:
        return self.method(params).merge(base, finetuned, state)

    def shortcut(self, params: P, n_models: int) -> Literal["base", "model"] | None:
        return self.method(params).shortcut(n_models)
