"""TIES merging (Yadav et al., 2023): trim, elect sign, disjoint merge.

For task vectors τi = θi − θ0:

1. *Trim*: keep each τi's ``density`` share of largest magnitudes, zero the rest — over the whole
   model (``scope: model``, the paper's way; a pre-pass finds each model's threshold) or per
   tensor (``scope: tensor``, as mergekit does).
2. *Elect*: each parameter's sign is the sign of the summed trimmed values (mass, not a vote;
   a zero sum counts as positive, as in mergekit).
3. *Disjoint merge*: average only the non-zero trimmed values whose sign agrees with the elected one.

θ = θ0 + λ · τ_merged. Speech-FT's TIES variant (Table 4) interpolates the merged task vector
with the pre-trained model, i.e. ``lambda`` = α = 0.25; ``lambda: 1`` is plain TIES.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import ConfigDict, Field

from harness import hookimpl
from harness.core.interfaces import MergePlugin, PluginParams


class TiesParams(PluginParams):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    density: float = Field(0.2, gt=0, le=1, description="share of each task vector's magnitudes kept")
    scope: Literal["model", "tensor"] = Field("model", description="where the top-density share is taken")
    lambda_: float = Field(1.0, alias="lambda", description="scale of the merged task vector")


def keep_count(numel: int, density: float) -> int:
    return max(1, min(numel, int(round(density * numel))))


def kth_largest(values: torch.Tensor, k: int) -> float:
    """The k-th largest entry of a 1-d tensor (its magnitude threshold for keeping k entries)."""
    return float(torch.kthvalue(values, values.numel() - k + 1).values)


def ties_merge(deltas: torch.Tensor, thresholds: list[float] | None, density: float) -> torch.Tensor:
    """Merged task vector from stacked task vectors ``deltas`` (n × ...).

    ``thresholds``: per-model magnitude thresholds (model scope), or None to trim per tensor.
    """
    mags = deltas.abs()
    if thresholds is None:
        flat = mags.flatten(1)
        k = keep_count(flat.shape[1], density)
        thr = torch.tensor([kth_largest(row, k) for row in flat], dtype=deltas.dtype)
    else:
        thr = torch.tensor(thresholds, dtype=deltas.dtype)
    thr = thr.view(-1, *([1] * (deltas.dim() - 1)))
    trimmed = torch.where(mags >= thr, deltas, torch.zeros_like(deltas))
    elected = torch.where(trimmed.sum(0) >= 0, 1.0, -1.0).to(deltas.dtype)
    agree = torch.sign(trimmed) == elected
    total = torch.where(agree, trimmed, torch.zeros_like(trimmed)).sum(0)
    return total / agree.sum(0).clamp(min=1).to(deltas.dtype)


class TiesMerge(MergePlugin):
    name = "ties"
    version = "1"
    summary = "TIES merging: trim to top density, elect sign by mass, disjoint mean, scale by lambda"
    Params = TiesParams
    mode = "group"

    def __init__(self) -> None:
        self._thresholds: list[float] | None = None

    def prepare(self, base: Any, finetuned: list[Any], params: TiesParams) -> None:
        """Model scope: each task vector's magnitude threshold over all merged tensors, one model at a time."""
        self._thresholds = None
        if params.scope != "model":
            return
        names = base.keys()
        sizes = [base.get_tensor(n).numel() for n in names]
        total = sum(sizes)
        thresholds = []
        for model in finetuned:
            mags = torch.empty(total, dtype=torch.float32)
            offset = 0
            for name, size in zip(names, sizes, strict=True):
                mags[offset : offset + size] = (model.get_tensor(name) - base.get_tensor(name)).abs().flatten()
                offset += size
            thresholds.append(kth_largest(mags, keep_count(total, params.density)) if total else 0.0)
            del mags
        self._thresholds = thresholds

    def merge_tensor(
        self, name: str, base: torch.Tensor, finetuned: list[torch.Tensor], params: TiesParams
    ) -> torch.Tensor:
        deltas = torch.stack([t - base for t in finetuned])
        thresholds = self._thresholds if params.scope == "model" else None
        if params.scope == "model" and thresholds is None:
            raise RuntimeError("TIES with scope 'model' needs prepare() before merge_tensor()")
        return base + params.lambda_ * ties_merge(deltas, thresholds, params.density)


@hookimpl
def harness_register_merge(registry):
    registry.add(TiesMerge)
