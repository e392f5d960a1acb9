"""The useful work of an upstream pass in FLOPs, counted on a shape-only copy of the model.

``torch.utils.flop_counter.FlopCounterMode`` with two corrections (:data:`FORMULAS`):

- **grouped convolutions' weight gradient.** torch's formula for ``convolution_backward`` counts the
  weight gradient as a full convolution of the input with the output gradient, every input channel
  against every output channel: ``groups`` times the products actually done. wav2vec 2.0's positional
  convolution has 16 groups, so its backward was counted 8.5× too large (17 forward passes' worth
  instead of 2), which adds about a fifth to HuBERT Base's training work. Here each of the two
  gradients counts what the forward does, as torch's formula gives for an ungrouped convolution.
- **the CPU's flash attention kernels**, which the counter leaves uncounted (its formulas cover the
  CUDA kernels): the same counts as for those.

The count runs on the ``meta`` device (shapes, no data, no arithmetic): the same counts as on the
model's own device (checked on the CPU), in a fraction of the time and without touching the GPU.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode, conv_flop_count, sdpa_backward_flop_count, sdpa_flop_count

aten = torch.ops.aten


def conv_backward_flops(grad_out_shape, x_shape, w_shape, _bias, _stride, _padding, _dilation, transposed,
                        _output_padding, _groups, output_mask, out_shape=None, **kwargs) -> int:
    """FLOPs of ``convolution_backward``: the input gradient and the weight gradient each do the
    forward's products (grouped or not)."""
    forward = conv_flop_count(list(x_shape), list(w_shape), list(grad_out_shape), transposed)
    return forward * (int(bool(output_mask[0])) + int(bool(output_mask[1])))


def _sdpa_forward(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _sdpa_backward(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


#: the counter's formulas that replace or add to torch's
FORMULAS: dict[Any, Callable[..., int]] = {
    aten.convolution_backward: conv_backward_flops,
    aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_forward,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _sdpa_backward,
}


def count_flops(run: Callable[[], Any]) -> int:
    """FLOPs of ``run()`` (forward and any backward it does) under :data:`FORMULAS`."""
    with FlopCounterMode(display=False, custom_mapping=FORMULAS) as counter:
        run()
    return counter.get_total_flops()


def flops_by_category(run: Callable[[], Any]) -> dict[str, float]:
    """FLOPs of ``run()`` by kind of work (:func:`profile_breakdown.category` of each operator)."""
    from profile_breakdown import category

    with FlopCounterMode(display=False, custom_mapping=FORMULAS) as counter:
        run()
    out: dict[str, float] = {}
    for op, flops in counter.get_flop_counts().get("Global", {}).items():
        kind = category(str(op).replace(".", "::", 1))  # aten.mm.default -> aten::mm.default, as profiled
        out[kind] = out.get(kind, 0.0) + float(flops)
    return out


def shape_only_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` on the ``meta`` device, its settings (attention mode, frozen parts) kept."""
    return copy.deepcopy(model).to("meta")
