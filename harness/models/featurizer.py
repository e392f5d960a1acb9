"""The SUPERB featurizer: a softmax-weighted sum of layer-normed hidden states.

Each hidden state goes through a layer norm *without* learnable scale or bias (Speech-FT,
Appendix A.2), then a softmax over one learnable weight per layer (initialised equal) mixes them.
Only these weights and the task head train; the upstream stays frozen.

Because the layer norm has no parameters and the mixture is linear, the time mean over valid
frames commutes with the weighted sum: ``mean_t sum_l w_l LN(h_lt) = sum_l w_l mean_t LN(h_lt)``.
A task whose head starts with mean pooling and a linear map can therefore train on cached
``[L, D]`` per-layer means (:meth:`WeightedSum.forward_pooled`) with the same result.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LN_EPS = 1e-5


def layer_norm(states: torch.Tensor) -> torch.Tensor:
    """Non-affine layer norm over the last dimension (float32 out)."""
    return F.layer_norm(states.float(), states.shape[-1:], eps=LN_EPS)


class WeightedSum(nn.Module):
    """``sum_l softmax(w)_l * LN(h_l)`` over ``num_layers`` hidden states."""

    def __init__(self, num_layers: int, normalize: bool = True):
        super().__init__()
        if num_layers < 1:
            raise ValueError("the featurizer needs at least one hidden state")
        self.num_layers = num_layers
        self.normalize = normalize
        self.weights = nn.Parameter(torch.zeros(num_layers))

    def mixture(self) -> torch.Tensor:
        return torch.softmax(self.weights, dim=0)

    def forward(self, states: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        """``states``: L×B×T×D (or a list of L tensors B×T×D) -> B×T×D.

        Layer norm is applied here unless the states were normed already (``normalize=False``,
        as for cached features, which are stored normed).
        """
        stacked = torch.stack(list(states)) if isinstance(states, (list, tuple)) else states
        if stacked.shape[0] != self.num_layers:
            raise ValueError(f"expected {self.num_layers} hidden states, got {stacked.shape[0]}")
        normed = layer_norm(stacked) if self.normalize else stacked.float()
        w = self.mixture().view(-1, *([1] * (normed.dim() - 1)))
        return (w * normed).sum(dim=0)

    def forward_pooled(self, pooled: torch.Tensor) -> torch.Tensor:
        """``pooled``: B×L×D per-layer time means of *layer-normed* states -> B×D."""
        if pooled.shape[1] != self.num_layers:
            raise ValueError(f"expected {self.num_layers} pooled hidden states, got {pooled.shape[1]}")
        return torch.einsum("l,bld->bd", self.mixture(), pooled.float())

    def layer_weights(self) -> list[float]:
        """The learned mixture (softmax of the weights), one per hidden state."""
        return [float(x) for x in self.mixture().detach().cpu()]
