"""Faster formulations of the upstream's costly parts, each equal to the plain path.

- :func:`positional_embedding`: the wav2vec 2.0 positional convolution (grouped, kernel 128,
  weight-normed) either as transformers computes it (``conv``) or through the FFT (``fft``,
  :func:`grouped_conv1d_fft`). The FFT form runs in float32 whatever the autocast dtype, so it
  matches the fp32 convolution to about 1e-6 (measured: ``tests/models/test_upstream_speed.py``);
  under bf16 autocast it is *more* precise than the bf16 convolution it replaces, which itself
  differs from fp32 by about 1e-2 relative (bf16's 8-bit mantissa).
- :func:`resolve_pos_conv`: which form a model uses. ``auto`` picks ``fft`` on CUDA only: there the
  direct grouped convolution runs cuDNN's generic implicit-GEMM kernels, while the FFT form does
  ``O(T log T)`` work per channel and a 48×48 mixing per frequency and group. Measured on an H200
  (HuBERT Base, 160-second batches, ``benchmarks/bench_upstream_speed.py``): extraction 1.64× faster
  in bf16 and 1.28× in fp32; forward+backward 1.16× in fp32 and level in bf16 (0.98×). On the CPU
  ``auto`` keeps the convolution, so that every CPU number stays as it was.
- :func:`compile_module`: the opt-in ``compile: true`` (``torch.compile`` of the transformer layers in
  place, dynamic shapes), and ``compile: graphs``, the same as CUDA graphs (torch's ``reduce-overhead``
  mode: a step's kernels replayed from a recording of each batch shape instead of launched one by one
  from the host, which kept an H200 idle 57 % of a HuBERT Base step; on the CPU it is plain compilation).
"""

from __future__ import annotations

import contextlib
import logging

import torch
import torch.nn.functional as F

log = logging.getLogger("harness.models.upstream_speed")

POS_CONV_MODES: tuple[str, ...] = ("auto", "conv", "fft")


def resolve_auto(what: str, mode: str, modes: tuple[str, ...], device: torch.device, *, cuda: str, other: str) -> str:
    """``mode`` itself, or for ``auto`` the ``cuda`` choice on a CUDA device and ``other`` elsewhere;
    a mode not in ``modes`` raises one sentence naming ``what`` and the modes."""
    if mode not in modes:
        raise ValueError(f"unknown {what} mode {mode!r}; use one of {', '.join(modes)}")
    if mode == "auto":
        return cuda if device.type == "cuda" else other
    return mode


def resolve_pos_conv(mode: str, device: torch.device) -> str:
    """The concrete form (``conv`` or ``fft``) of ``mode`` on ``device`` (see the module docstring)."""
    return resolve_auto("positional-convolution", mode, POS_CONV_MODES, device, cuda="fft", other="conv")


def grouped_conv1d_fft(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: int, groups: int
) -> torch.Tensor:
    """``F.conv1d(x, weight, bias, padding=padding, groups=groups)`` computed through the real FFT, in float32.

    ``x`` is B×C×T, ``weight`` C_out×(C/groups)×K. A cross-correlation of the zero-padded input with
    the kernel is the inverse FFT of ``X · conj(W)`` over ``n = T + 2·padding`` points: every output
    position reads at most ``n`` samples, so the circular product never wraps into valid outputs.
    """
    batch, channels, frames = x.shape
    out_channels, per_group, kernel = weight.shape
    n = frames + 2 * padding
    n_out = n - kernel + 1
    with autocast_off(x.device):
        xf = torch.fft.rfft(F.pad(x.float(), (padding, padding)), n=n)  # B×C×F
        wf = torch.fft.rfft(weight.float(), n=n).conj()  # O×Cg×F
        xf = xf.view(batch, groups, per_group, -1)
        wf = wf.view(groups, out_channels // groups, per_group, -1)
        yf = torch.einsum("bgcf,gocf->bgof", xf, wf).reshape(batch, out_channels, -1)
        y = torch.fft.irfft(yf, n=n)[..., :n_out]
        if bias is not None:
            y = y + bias.float()[None, :, None]
    return y


def autocast_off(device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast switched off on ``device``; nothing to switch off where it has none (``meta``)."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


def positional_embedding(module: torch.nn.Module, x: torch.Tensor, mode: str) -> torch.Tensor:
    """transformers' ``Wav2Vec2PositionalConvEmbedding`` forward on B×T×D ``x``: conv, same-padding trim,
    activation; ``mode`` ``fft`` swaps the convolution for :func:`grouped_conv1d_fft`."""
    if mode == "conv":
        return module(x)
    conv = module.conv
    h = grouped_conv1d_fft(x.transpose(1, 2), conv.weight, conv.bias, int(conv.padding[0]), int(conv.groups))
    cast = torch.amp.is_autocast_available(x.device.type) and torch.is_autocast_enabled(x.device.type)
    if cast:  # what the autocast convolution would hand on
        h = h.to(torch.get_autocast_dtype(x.device.type))
    else:
        h = h.to(x.dtype)
    h = module.padding(h)
    return module.activation(h).transpose(1, 2)


def compile_regions(module: torch.nn.Module) -> list[torch.nn.Module]:
    """What :func:`compile_module` compiles: a wav2vec 2.0-family encoder's transformer layers
    (``module.encoder.layers``) where the module has them, else the module itself."""
    layers = getattr(getattr(module, "encoder", None), "layers", None)
    return list(layers) if isinstance(layers, torch.nn.ModuleList) and len(layers) else [module]


def compile_module(module: torch.nn.Module, graphs: bool = False) -> torch.nn.Module:
    """``module`` with :func:`compile_regions` compiled in place by ``torch.compile`` (dynamic shapes:
    batches vary in size and length; ``graphs``: replayed as CUDA graphs, one recorded per shape); its
    parameters and state-dict names are unchanged.

    Regional, not whole-model: the layers hold the fusable work (layer norms, activations, dropout,
    residuals) and are identical, so one compilation serves them all; the CNN front end and the
    attention mask take data-dependent branches on the lengths, which split a whole-model graph
    (torch.compile of the whole HuBERT Base had not finished compiling after 85 s on an H200)."""
    regions = compile_regions(module)
    for region in regions:
        region.compile(dynamic=True, mode="reduce-overhead" if graphs else None)
    log.info("compiled %d region(s) of %s with torch.compile%s (the first batches of each new shape are slower)",
             len(regions), type(module).__name__, " as CUDA graphs" if graphs else "")
    return module
