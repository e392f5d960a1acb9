"""Running an upstream over many waveforms: length-sorted dynamic batches, outputs trimmed per item.

Used by ``harness extract`` and by anything that caches hidden states. Extraction runs in float32,
as s3prl's does, unless a CUDA run asks for ``tf32`` (float32 on TF32 tensor cores) or ``bf16``
(autocast) through :func:`extraction_precision`. Batches come from
:class:`harness.data.batching.DynamicBatchSampler` without shuffling: items sorted by length and packed
while ``items × longest`` stays within ``max_seconds`` of audio, so little of each batch is padding
(``benchmarks/bench_extract.py`` measures the gain over fixed-size batches).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from harness.core.errors import StageError
from harness.core.model_types import UpstreamModel
from harness.data.batching import DynamicBatchSampler, FixedBatchSampler

log = logging.getLogger("harness.models.inference")

SAMPLE_RATE = 16000

def effective_precision(precision: str, device: torch.device | str | None) -> str:
    """``precision`` where it applies (CUDA), ``fp32`` elsewhere."""
    return precision if device is not None and torch.device(device).type == "cuda" else "fp32"


@contextlib.contextmanager
def extraction_precision(precision: str, device: torch.device) -> Iterator[None]:
    """The upstream's forward in ``precision`` on ``device``: ``bf16`` under autocast, ``tf32`` with the
    float32 matrix products on TF32 tensor cores (cuDNN's convolutions use them by default already),
    ``fp32`` (and anything on the CPU) as it is. The matmul precision is restored afterwards."""
    precision = effective_precision(precision, device)
    if precision == "bf16":
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
            yield
    elif precision == "tf32":
        matmul = torch.backends.cuda.matmul
        before = matmul.fp32_precision
        matmul.fp32_precision = "tf32"
        try:
            yield
        finally:
            matmul.fp32_precision = before
    else:
        yield


def length_sorted_batches(
    lengths: Sequence[int], max_seconds: float, max_items: int | None = None, sample_rate: int = SAMPLE_RATE
) -> list[list[int]]:
    """Indices grouped by length so that each batch holds at most ``max_seconds`` of padded audio."""
    if not len(lengths):
        return []
    return list(DynamicBatchSampler(lengths, max_seconds * sample_rate, seed=0, shuffle=False, max_items=max_items))


def fixed_batches(n_items: int, batch_size: int) -> list[list[int]]:
    """``batch_size`` consecutive items per batch, in the given order (the baseline)."""
    return list(FixedBatchSampler(n_items, batch_size, seed=0, shuffle=False)) if n_items else []


def pad_batch(wavs: Sequence[np.ndarray | torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-padded B×S float32 waveforms and their lengths."""
    tensors = [torch.as_tensor(np.asarray(w, dtype=np.float32)) for w in wavs]
    lengths = torch.tensor([len(t) for t in tensors], dtype=torch.long)
    return torch.nn.utils.rnn.pad_sequence(tensors, batch_first=True), lengths


def batched_forward(
    model: UpstreamModel,
    wavs: Sequence[np.ndarray | torch.Tensor],
    *,
    max_seconds: float = 60.0,
    batches: Sequence[Sequence[int]] | None = None,
    lengths: Sequence[int] | None = None,
    layers: Sequence[int] | None = None,
    device: torch.device | str | None = None,
    precision: str = "fp32",
) -> Iterator[tuple[int, list[torch.Tensor]]]:
    """Yield ``(index, hidden states)`` for every waveform, batch by batch.

    Each hidden state is a T×D float32 CPU tensor holding only the item's valid frames; ``layers``
    picks some (default: all). ``wavs`` may be a lazy sequence (items are read when their batch
    runs); give ``lengths`` (samples) then, so batching does not read them all first. ``batches``
    overrides the length-sorted packing. ``precision``: see :func:`extraction_precision`. On a CUDA
    out-of-memory error a batch is split in two and retried (logged), never skipped.
    """
    if batches is None:
        if lengths is None:
            lengths = [len(w) for w in wavs]
        batches = length_sorted_batches(lengths, max_seconds)
    device = torch.device(device) if device is not None else next(
        (p.device for p in model.parameters()), torch.device("cpu")
    )
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            items = [wavs[i] for i in batch]
            yield from _run(model, list(batch), items, layers, device, precision)
    finally:
        model.train(was_training)


def _run(
    model: UpstreamModel,
    index: list[int],
    items: list[np.ndarray | torch.Tensor],
    layers: Sequence[int] | None,
    device: torch.device,
    precision: str = "fp32",
) -> Iterator[tuple[int, list[torch.Tensor]]]:
    x, lengths = pad_batch(items)
    try:
        with torch.no_grad(), extraction_precision(precision, device):
            out = model(x.to(device), lengths)  # lengths stay on the host: no device sync
    except torch.cuda.OutOfMemoryError:
        if len(index) == 1:
            raise StageError(
                f"one utterance of {len(items[0]) / SAMPLE_RATE:.1f} s does not fit in GPU memory; "
                "lower the batch cap or run on the CPU."
            ) from None
        torch.cuda.empty_cache()
        half = len(index) // 2
        log.warning("out of GPU memory on a batch of %d; splitting it in two.", len(index))
        yield from _run(model, index[:half], items[:half], layers, device, precision)
        yield from _run(model, index[half:], items[half:], layers, device, precision)
        return
    chosen = out.hidden_states if layers is None else [out.hidden_states[i] for i in layers]
    per_item = trimmed(chosen, out.lengths.cpu().tolist(), batch_copy=device.type != "cpu")
    yield from zip(index, per_item, strict=True)


def trimmed(hidden: Sequence[torch.Tensor], frames: list[int], batch_copy: bool) -> list[list[torch.Tensor]]:
    """Per item, its valid frames of each padded B×T×D hidden state as float32 CPU tensors. ``batch_copy``
    (an accelerator's states): the batch crosses to the host in one copy, not one per item and layer."""
    if batch_copy:
        hidden = torch.stack([h[:, : max(frames, default=0)].float() for h in hidden]).cpu().unbind(0)
    return [[h[j, :n].float().cpu() for h in hidden] for j, n in enumerate(frames)]
