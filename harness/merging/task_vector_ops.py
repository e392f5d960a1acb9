"""The tensor maths of the task-arithmetic family (:mod:`harness.merging.task_vectors`): trimming,
sign election and the model-wide thresholds. Imported when a merge runs, so that describing merges
(registering the plugins, planning shortcuts) never imports torch."""

from __future__ import annotations

from typing import Literal

import torch

from harness.core.interfaces import TensorSource

__all__ = ["elect_and_merge", "keep_count", "kth_largest", "model_thresholds", "trim"]


def keep_count(numel: int, density: float) -> int:
    """How many of ``numel`` entries a ``density`` share keeps (at least one, at most all)."""
    return max(1, min(numel, int(round(density * numel))))


def kth_largest(values: torch.Tensor, k: int) -> float:
    """The k-th largest entry of a 1-d tensor (its magnitude threshold for keeping k entries)."""
    return float(torch.kthvalue(values, values.numel() - k + 1).values)


def model_thresholds(base: TensorSource, finetuned: list[TensorSource], density: float) -> tuple[float, ...]:
    """Each task vector's magnitude threshold for keeping its ``density`` share over all tensors of
    ``base``, reading one model's magnitudes at a time."""
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
        thresholds.append(kth_largest(mags, keep_count(total, density)) if total else 0.0)
        del mags
    return tuple(thresholds)


def trim(
    deltas: torch.Tensor,
    density: float,
    scope: Literal["model", "tensor"],
    thresholds: tuple[float, ...] | None,
) -> torch.Tensor:
    """Stacked task vectors (n × ...) with all but each one's ``density`` share of largest magnitudes
    zeroed: per tensor, or against the model-wide ``thresholds`` (one per task vector)."""
    mags = deltas.abs()
    if scope == "tensor":
        flat = mags.flatten(1)
        k = keep_count(flat.shape[1], density)
        thr = torch.tensor([kth_largest(row, k) for row in flat], dtype=deltas.dtype)
    elif thresholds is None:
        raise RuntimeError("model-scope trimming needs the thresholds returned by prepare()")
    else:
        thr = torch.tensor(thresholds, dtype=deltas.dtype)
    thr = thr.view(-1, *([1] * (deltas.dim() - 1)))
    return torch.where(mags >= thr, deltas, torch.zeros_like(deltas))


def elect_and_merge(deltas: torch.Tensor) -> torch.Tensor:
    """TIES' combination of stacked task vectors (n × ...): elect each entry's sign by the summed
    mass (zero counts as positive), then average the non-zero values that agree with it."""
    elected = torch.where(deltas.sum(0) >= 0, 1.0, -1.0).to(deltas.dtype)
    agree = torch.sign(deltas) == elected
    total = torch.where(agree, deltas, torch.zeros_like(deltas)).sum(0)
    return total / agree.sum(0).clamp(min=1).to(deltas.dtype)
