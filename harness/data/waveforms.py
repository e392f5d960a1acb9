"""Waveforms of a manifest split as padded batches, for training that runs the upstream itself.

:class:`WaveformSet` reads each utterance once with :func:`harness.data.audio.load` (16 kHz mono float32)
and keeps it in memory when the split is small (``cache_hours``); larger splits are read per batch.
``lengths`` are durations in seconds, the unit :class:`harness.data.batching.DynamicBatchSampler` caps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from harness.data import audio

SAMPLE_RATE = audio.SAMPLE_RATE


@dataclass
class WaveBatch:
    """B×S zero-padded waveforms, valid samples per item (B,), and the manifest rows."""

    wavs: torch.Tensor
    wav_lengths: torch.Tensor
    rows: list[dict[str, Any]]

    def to(self, device: torch.device) -> WaveBatch:
        """The waveforms on ``device``; the lengths stay on the host, where the upstreams read them
        without waiting for the device (:meth:`harness.core.model_types.UpstreamModel.forward`)."""
        return WaveBatch(self.wavs.to(device, non_blocking=True), self.wav_lengths.cpu(), self.rows)


#: with cuDNN autotuning, batches are padded up to a whole number of these, so that their shapes repeat
#: and each shape is autotuned once (at most 0.5 s of padding per utterance)
AUTOTUNE_BUCKET_SECONDS = 0.5


def pad_waves(waves: list[np.ndarray], multiple: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack 1-d float arrays into a zero-padded B×S tensor (S rounded up to a ``multiple`` of samples)
    and their lengths."""
    lengths = torch.tensor([len(w) for w in waves], dtype=torch.long)
    longest = int(lengths.max()) if len(waves) else 0
    out = torch.zeros(len(waves), -(-longest // multiple) * multiple)
    for i, w in enumerate(waves):
        out[i, : len(w)] = torch.from_numpy(np.asarray(w, dtype=np.float32))
    return out, lengths


class WaveformSet:
    """The utterances ``rows`` of one split; ``max_seconds`` keeps only the first seconds of each."""

    def __init__(self, rows: list[dict[str, Any]], max_seconds: float | None = None, cache_hours: float = 2.0,
                 pad_multiple: int = 1):
        self.rows = rows
        self.pad_multiple = pad_multiple  # collated batches' length is a multiple of these samples
        self.max_samples = int(max_seconds * SAMPLE_RATE) if max_seconds else None
        durations = [float(r["duration"]) for r in rows]
        self.lengths = [min(d, max_seconds) if max_seconds else d for d in durations]
        self._cache: dict[int, np.ndarray] | None = {} if sum(self.lengths) <= cache_hours * 3600 else None

    def __len__(self) -> int:
        return len(self.rows)

    def wave(self, i: int) -> np.ndarray:
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        wav = audio.load_utterance(self.rows[i])
        if self.max_samples is not None:
            wav = wav[: self.max_samples]
        if self._cache is not None:
            self._cache[i] = wav
        return wav

    def collate(self, indices: list[int]) -> WaveBatch:
        wavs, lengths = pad_waves([self.wave(i) for i in indices], self.pad_multiple)
        return WaveBatch(wavs, lengths, [self.rows[i] for i in indices])

    def batches(self, max_seconds: float) -> list[list[int]]:
        """Length-sorted index batches covering every item once (for evaluation passes)."""
        from harness.data.batching import DynamicBatchSampler

        return list(DynamicBatchSampler(self.lengths, max_seconds, seed=0, shuffle=False))
