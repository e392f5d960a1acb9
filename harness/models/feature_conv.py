"""The wav2vec 2.0 CNN feature encoder either as convolutions or as matrix products (``set_feature_conv``).

``conv`` is transformers' form: channel-major B×C×T tensors through ``conv1d``. ``gemm`` keeps the
signal time-major (B×T×C) and computes each strided convolution as a few matrix products over a
*view* of its input, with no unfolded copy (at most a plain one, to whole rows): with stride ``s``, the
input reshaped to rows of ``s`` consecutive frames (B·T/s × s·C) holds in row ``t`` exactly the frames that taps
``0..s-1`` of output ``t`` read; taps ``s..2s-1`` read row ``t+1``. So a kernel of ``k ≤ 2s`` taps
is two products, of that view and of its first ``(k-s)·C`` columns (a strided view a GEMM reads
as it is), summed with a shift of one row. The group norm (statistics over time per utterance) and
the layer norm (over channels) work on the time-major layout directly, and the output is B×T×C,
which is what the projection reads, so the ``conv`` form's transposes go away too.

Why our own code: a profile of HuBERT Base training on an H200 showed cuDNN running these 1-D
convolutions (one input channel in the first, strides of 5 and 2) on its generic implicit-GEMM
kernels, while matrix products go to cuBLAS's tuned ones. On the CPU oneDNN's convolutions are the
faster in fp32 (HuBERT Base, 20-second batches, 2 cores: ``gemm`` at 0.80× in training and 0.88× in
extraction), so ``conv`` stays the default everywhere, and the benchmark times ``gemm`` against it
(``benchmarks/bench_upstream_speed.py``, ``+cnn_gemm`` paths). Both forms give the same frames
within float rounding (``tests/models/test_feature_conv.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FEATURE_CONV_MODES: tuple[str, ...] = ("conv", "gemm")


def check_feature_conv(mode: str) -> str:
    """``mode`` if it is a known form; otherwise one sentence naming the forms."""
    if mode not in FEATURE_CONV_MODES:
        raise ValueError(f"unknown feature-convolution mode {mode!r}; use one of {', '.join(FEATURE_CONV_MODES)}")
    return mode


def strided_conv_gemm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int) -> torch.Tensor:
    """``conv1d`` without padding on time-major ``x`` (B×T×C_in) as matrix products: B×T_out×C_out.

    ``weight`` is conv1d's C_out×C_in×k. Taps are taken ``stride`` at a time (a row of the view), so a
    kernel of ``k`` taps costs ``ceil(k / stride)`` products; the wav2vec 2.0 CNN has ``k ≤ 2·stride``.
    """
    batch, frames, channels = x.shape
    kernel = weight.shape[-1]
    out = (frames - kernel) // stride + 1
    if out <= 0:
        return x.new_zeros(batch, 0, weight.shape[0])
    groups = -(-kernel // stride)
    rows = out + groups - 1  # rows of the view the products need
    need = rows * stride
    # the view needs whole rows: an input that is not (most batches) is padded or trimmed first, the one
    # copy of it this makes being small beside the products
    x = F.pad(x, (0, 0, 0, need - frames)) if need > frames else x[:, :need]
    flat = x.reshape(batch * rows, stride * channels)
    taps = weight.permute(2, 1, 0)  # k×C_in×C_out: tap-major, as the view's columns are laid out
    y = None
    for g in range(groups):
        width = min(stride, kernel - g * stride)
        w = taps[g * stride: g * stride + width].reshape(width * channels, -1)
        # every row, so that the operand stays a strided 2-D view (a batched product of the shifted
        # rows would copy them); the one or two extra rows per utterance are dropped here
        part = torch.mm(flat[:, : width * channels], w).view(batch, rows, -1)[:, g: g + out]
        y = part if y is None else y + part
    return y if bias is None else y + bias.to(y.dtype)


def masked_group_norm_time_major(x: torch.Tensor, counts: list[int], norm: torch.nn.GroupNorm) -> torch.Tensor:
    """The first CNN block's group norm (one channel per group, statistics over time) on B×T×C ``x``,
    each utterance's statistics over its first ``counts[i]`` frames only, in float32 as the channel-major
    form computes them."""
    frames = x.shape[1]
    counts = [min(max(int(n), 1), frames) for n in counts]
    if all(n == frames for n in counts):
        var, mean = torch.var_mean(x.float(), dim=1, unbiased=False, keepdim=True)
    else:
        stats = [torch.var_mean(x[i, :n].float(), dim=0, unbiased=False) for i, n in enumerate(counts)]
        var = torch.stack([v for v, _ in stats])[:, None]
        mean = torch.stack([m for _, m in stats])[:, None]
    scale = torch.rsqrt(var + norm.eps)
    shift = -mean * scale
    if norm.affine:
        scale = scale * norm.weight.float()
        shift = shift * norm.weight.float() + norm.bias.float()
    return torch.addcmul(shift, x.float(), scale).to(x.dtype)


def cnn_time_major(conv_layers: torch.nn.ModuleList, strides: list[int], wavs: torch.Tensor,
                   counts: list[int]) -> torch.Tensor:
    """transformers' feature encoder (``conv_layers``) on B×T ``wavs`` as matrix products: B×frames×C.
    ``counts`` are the waveforms' valid samples (host integers), for the group norm's statistics."""
    x = wavs[:, :, None]
    for layer, stride in zip(conv_layers, strides):
        conv = layer.conv
        kernel = conv.weight.shape[-1]
        x = strided_conv_gemm(x, conv.weight, conv.bias, stride)
        counts = [max((n - kernel) // stride + 1, 0) for n in counts]
        norm = getattr(layer, "layer_norm", None)
        if isinstance(norm, torch.nn.GroupNorm):
            x = masked_group_norm_time_major(x, counts, norm)
        elif norm is not None:
            x = norm(x)
        x = layer.activation(x)
    return x
