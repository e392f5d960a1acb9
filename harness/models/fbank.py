"""Kaldi-compatible log-mel filterbank features on padded batches, in torch.

Shared by the ``fbank`` upstream (SUPERB's FBank baseline) and the ``decoar2`` upstream (its
80-dim fbank input). The arithmetic is Kaldi's ``compute-fbank-feats`` as
``torchaudio.compliance.kaldi.fbank`` implements it with its defaults (no dither, DC removal,
pre-emphasis 0.97, 25 ms frames every 10 ms with ``snip_edges``, FFT padded to a power of two,
power spectrum, triangular mel bins between 20 Hz and Nyquist, natural log floored at float32
epsilon), so results match the s3prl reference. It is written here rather than calling
kaldi-native-fbank per utterance so that a whole padded batch is computed at once on the model's
device; the tests check it against kaldi-native-fbank.

Utterance-level steps (deltas, mean/variance normalisation, frame-rate reduction) count only
each utterance's valid frames, so a padded batch gives the same valid frames as one utterance.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

from harness.models.speech_encoder import frame_mask, masked_norm_stats
from harness.models.upstream_speed import autocast_off

Window = Literal["povey", "hamming", "hanning"]

_EPS = float(torch.finfo(torch.float32).eps)


def kaldi_mel_banks(
    num_bins: int, n_fft: int = 512, sample_rate: int = 16000, low_freq: float = 20.0, high_freq: float = 0.0
) -> np.ndarray:
    """Kaldi's triangular mel filters, ``num_bins × (n_fft // 2 + 1)`` (the Nyquist column is zero)."""
    nyquist = sample_rate / 2
    high = high_freq if high_freq > 0 else nyquist + high_freq

    def mel(f: np.ndarray | float) -> np.ndarray:
        return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)

    mel_low, mel_high = mel(low_freq), mel(high)
    delta = (mel_high - mel_low) / (num_bins + 1)
    left = mel_low + np.arange(num_bins) * delta
    center, right = left + delta, left + 2 * delta
    m = mel(np.arange(n_fft // 2) * (sample_rate / n_fft))[None, :]
    up = (m - left[:, None]) / (center - left)[:, None]
    down = (right[:, None] - m) / (right - center)[:, None]
    weights = np.maximum(0.0, np.minimum(up, down))
    return np.concatenate([weights, np.zeros((num_bins, 1))], axis=1)


def _window(kind: str, length: int) -> torch.Tensor:
    if kind == "povey":
        return torch.hann_window(length, periodic=False, dtype=torch.float64).pow(0.85)
    if kind == "hamming":
        return torch.hamming_window(length, periodic=False, alpha=0.54, beta=0.46, dtype=torch.float64)
    if kind == "hanning":
        return torch.hann_window(length, periodic=False, dtype=torch.float64)
    raise ValueError(f"unknown window {kind!r}; use povey, hamming or hanning")


class KaldiFbank(torch.nn.Module):
    """Log-mel filterbank of padded waveforms: (B×S, lengths) -> (B×T×num_mel_bins, frames).

    No learnable parameters and no persistent buffers (the state dict is empty).
    """

    def __init__(
        self,
        num_mel_bins: int = 80,
        window: Window = "povey",
        sample_rate: int = 16000,
        frame_length_ms: float = 25.0,
        frame_shift_ms: float = 10.0,
        preemphasis: float = 0.97,
        low_freq: float = 20.0,
        high_freq: float = 0.0,
    ):
        super().__init__()
        self.num_mel_bins = num_mel_bins
        self.win_length = int(sample_rate * frame_length_ms / 1000)
        self.hop_length = int(sample_rate * frame_shift_ms / 1000)
        self.n_fft = 1 << math.ceil(math.log2(self.win_length))
        self.preemphasis = preemphasis
        self.register_buffer("window", _window(window, self.win_length).float(), persistent=False)
        banks = kaldi_mel_banks(num_mel_bins, self.n_fft, sample_rate, low_freq, high_freq)
        self.register_buffer("mel_banks", torch.from_numpy(banks).float(), persistent=False)

    def num_frames(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames of each waveform length (Kaldi's ``snip_edges``: only whole windows)."""
        n = torch.div(lengths.long() - self.win_length, self.hop_length, rounding_mode="floor") + 1
        return n.clamp(min=0)

    def forward(self, wavs: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with autocast_off(wavs.device):
            x = wavs.float()
            if x.shape[1] < self.win_length:
                x = torch.nn.functional.pad(x, (0, self.win_length - x.shape[1]))
            frames = x.unfold(1, self.win_length, self.hop_length)  # B×T×W
            frames = frames - frames.mean(dim=-1, keepdim=True)
            if self.preemphasis:
                prev = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
                frames = frames - self.preemphasis * prev
            frames = frames * self.window
            spec = torch.fft.rfft(frames, n=self.n_fft)
            power = spec.real.square() + spec.imag.square()
            mel = power @ self.mel_banks.T
            feats = mel.clamp(min=_EPS).log()
        n = self.num_frames(lengths.to(wavs.device, non_blocking=True)).clamp(max=feats.shape[1])
        return feats, n


def _clamped(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows ``index`` (B×T, already clamped per utterance) of each utterance of ``x`` (B×T×D)."""
    return torch.gather(x, 1, index[..., None].expand(-1, -1, x.shape[-1]))


def add_deltas(x: torch.Tensor, lengths: torch.Tensor, order: int = 2, win_length: int = 5) -> torch.Tensor:
    """``[x, Δx, Δ²x, ...]`` along the feature axis, each order the regression of the previous one
    (``torchaudio.functional.compute_deltas``), with edge frames replicated at each utterance's
    own end."""
    if order == 0:
        return x
    half = (win_length - 1) // 2
    denom = sum(k * k for k in range(1, half + 1)) * 2
    t = torch.arange(x.shape[1], device=x.device)[None, :]
    last = (lengths.to(x.device) - 1).clamp(min=0)[:, None]
    outs = [x]
    cur = x
    for _ in range(order):
        acc = torch.zeros_like(cur)
        for k in range(1, half + 1):
            ahead = torch.minimum(t + k, last).clamp(min=0)
            behind = torch.minimum((t - k).clamp(min=0), last)
            acc = acc + k * (_clamped(cur, ahead) - _clamped(cur, behind))
        cur = acc / denom
        outs.append(cur)
    return torch.cat(outs, dim=-1)


def utterance_cmvn(x: torch.Tensor, lengths: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Per-utterance mean and variance normalisation over valid frames: ``(x - mean) / (eps + std)``
    with the unbiased standard deviation, as s3prl's baseline and DeCoAR 2.0 front ends do."""
    mask = frame_mask(lengths.to(x.device), x.shape[1])[..., None]
    mean, var = masked_norm_stats(x, mask, dim=1, unbiased=True)
    return ((x.float() - mean) / (eps + var.sqrt())).to(x.dtype)


def reduce_frames(
    x: torch.Tensor, lengths: torch.Tensor, factor: int, mode: Literal["skip", "stack"]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower the frame rate by ``factor``: ``skip`` keeps every factor-th frame (DeCoAR 2.0's
    ``y[::2]``), ``stack`` concatenates ``factor`` consecutive frames (the last group of each
    utterance is completed by repeating its last frame). Both give ceil(n / factor) frames."""
    if factor == 1:
        return x, lengths
    new_lengths = torch.div(lengths + factor - 1, factor, rounding_mode="floor")
    if mode == "skip":
        return x[:, ::factor], new_lengths
    out_t = -(-x.shape[1] // factor)
    t = torch.arange(out_t, device=x.device)[None, :, None] * factor + torch.arange(factor, device=x.device)
    last = (lengths.to(x.device) - 1).clamp(min=0)[:, None, None]
    index = torch.minimum(t, last).reshape(x.shape[0], -1)
    stacked = _clamped(x, index).reshape(x.shape[0], out_t, factor * x.shape[-1])
    return stacked, new_lengths
