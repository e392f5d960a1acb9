"""SpecAugment on a probe's input features while it trains, as SUPERB's ASR and SF recipes do.

s3prl applies it to the featurizer's weighted sum (``specaug:`` in ``downstream/asr/config.yaml``
and ``downstream/ctc/snips.yaml``): a time warp of each utterance's valid frames (window 5,
bicubic), then 4 masks along the feature axis of width U[0, 50) and along time 2 of width U[0, 40)
(ASR) or, adaptive as ``snips.yaml`` sets it (SF), min(int(0.04 · T), 20) of width
U[0, min(40, int(0.04 · T))) over T padded frames; masks are filled with zeros; no augmentation at
evaluation. The random draws follow s3prl's order, so the
same generator state gives the same augmentation. Written here because torchaudio (whose masking
differs in any case) does not load against this torch, and s3prl is not a runtime dependency.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F

from harness.core.interfaces import Batch, SpecAugSettings, Task

__all__ = ["SpecAugSettings", "augmented", "spec_augment"]


def augmented(task: Task, batch: Batch) -> Batch:
    """``batch`` with ``task``'s SpecAugment applied to its frame features (unchanged when the task has
    none or the batch is pooled); callers use it while training only."""
    if task.specaug is None or batch.features is None:
        return batch
    assert batch.lengths is not None, "frame features come with their lengths"
    return replace(batch, features=spec_augment(batch.features, batch.lengths, task.specaug))


def spec_augment(features: torch.Tensor, lengths: torch.Tensor, settings: SpecAugSettings) -> torch.Tensor:
    """B×T×D features with valid ``lengths`` -> augmented B×T×D (out of place: gradients flow)."""
    x = features
    if settings.time_warp_window > 0:
        x = _time_warp(x, lengths, settings.time_warp_window)
    if settings.num_freq_masks > 0:
        x = x.masked_fill(_axis_mask(x.shape[0], x.shape[2], settings.freq_mask_width, settings.num_freq_masks,
                                     x.device)[:, None, :], 0.0)  # fmt: skip
    count, width = time_masks(settings, x.shape[1])
    if count > 0 and width[1] > width[0]:
        # over the padded length, as s3prl draws them
        x = x.masked_fill(_axis_mask(x.shape[0], x.shape[1], width, count, x.device)[:, :, None], 0.0)
    return x


def time_masks(settings: SpecAugSettings, frames: int) -> tuple[int, tuple[int, int]]:
    """(number of time masks, width range) over ``frames`` padded frames: fixed, or s3prl's adaptive
    rule. Where the adaptive width's bound falls to its floor (under 25 frames at 0.04) no mask is drawn;
    s3prl fails there."""
    count, (low, high) = settings.num_time_masks, settings.time_mask_width
    if settings.adaptive_number_ratio > 0:
        count = min(int(settings.adaptive_number_ratio * frames), settings.max_time_masks)
    if settings.adaptive_size_ratio > 0:
        high = min(high, int(settings.adaptive_size_ratio * frames))
    return count, (low, high)


def _time_warp(x: torch.Tensor, lengths: torch.Tensor, window: int) -> torch.Tensor:
    """Stretch frames [0, c) of each utterance to [0, w) and squeeze the rest to [w, n)."""
    rows = []
    for i in range(x.shape[0]):
        n = int(lengths[i])
        row = x[i, :n]
        if n - window > window:
            center = int(torch.randint(window, n - window, (1,))[0])
            warped = int(torch.randint(center - window, center + window, (1,))[0]) + 1
            left = _resize(row[:center], warped)
            right = _resize(row[center:], n - warped)
            row = torch.cat([left, right])
        rows.append(F.pad(row, (0, 0, 0, x.shape[1] - n)))
    return torch.stack(rows)


def _resize(frames: torch.Tensor, length: int) -> torch.Tensor:
    """T×D frames resampled to length×D along time by bicubic interpolation."""
    grid = frames[None, None]
    return F.interpolate(grid, size=(length, frames.shape[1]), mode="bicubic", align_corners=False)[0, 0]


def _axis_mask(batch: int, size: int, width: tuple[int, int], count: int, device: torch.device) -> torch.Tensor:
    """B×size booleans: ``count`` spans per row of width U[width) at positions U[0, size − widest)."""
    widths = torch.randint(width[0], width[1], (batch, count), device=device)[:, :, None]
    starts = torch.randint(0, max(1, size - int(widths.max())), (batch, count), device=device)[:, :, None]
    positions = torch.arange(size, device=device)[None, None, :]
    return ((starts <= positions) & (positions < starts + widths)).any(dim=1)
