"""Pseudo-labels for masked prediction: MFCC or hidden-state k-means units per model frame.

- :func:`mfcc_frames`: 13 MFCCs (kaldi-native-fbank, Kaldi's defaults, no dither) with Δ and ΔΔ
  (39 dims, HuBERT's first-iteration features) at 10 ms, averaged in pairs to the 20 ms frames of
  the upstreams (model frame ``i`` covers the samples from ``320·i``, as 10 ms frames ``2i, 2i+1``).
- :class:`KMeans`: standardised features, k-means++ and Lloyd iterations from
  :func:`scipy.cluster.vq.kmeans2`, seeded; :meth:`KMeans.assign` gives unit indices.
"""

from __future__ import annotations

import logging

import kaldi_native_fbank as knf
import numpy as np
import torch
from scipy.cluster.vq import kmeans2

from harness.models.fbank import add_deltas

log = logging.getLogger("harness.training.pseudo_labels")


def mfcc_frames(wav: np.ndarray, frame_shift: float = 0.02, sample_rate: int = 16000) -> np.ndarray:
    """T×39 MFCC + Δ + ΔΔ of a 16 kHz waveform at ``frame_shift`` (a multiple of 10 ms)."""
    opts = knf.MfccOptions()
    opts.frame_opts.dither = 0.0
    opts.frame_opts.samp_freq = sample_rate
    mfcc = knf.OnlineMfcc(opts)
    mfcc.accept_waveform(sample_rate, (np.asarray(wav, dtype=np.float32) * 32768.0).tolist())
    mfcc.input_finished()
    n = mfcc.num_frames_ready
    if n == 0:
        return np.zeros((0, 39), dtype=np.float32)
    feats = torch.from_numpy(np.stack([mfcc.get_frame(i) for i in range(n)]).astype(np.float32))
    feats = add_deltas(feats[None], torch.tensor([n]))[0].numpy()
    factor = max(1, int(round(frame_shift / 0.01)))
    m = -(-n // factor)
    padded = np.concatenate([feats, np.repeat(feats[-1:], m * factor - n, axis=0)])
    return padded.reshape(m, factor, -1).mean(axis=1)


class KMeans:
    """k-means on standardised features (scipy's ``kmeans2`` with k-means++ initialisation)."""

    def __init__(self, n_clusters: int, iterations: int = 30, seed: int = 0):
        self.n_clusters = n_clusters
        self.iterations = iterations
        self.seed = seed
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        self.centroids: np.ndarray | None = None

    def fit(self, feats: np.ndarray) -> KMeans:
        feats = np.asarray(feats, dtype=np.float64)
        k = min(self.n_clusters, len(feats))
        self.mean = feats.mean(0)
        self.std = feats.std(0) + 1e-8
        z = (feats - self.mean) / self.std
        rng = np.random.default_rng(self.seed)
        self.centroids, _ = kmeans2(z, k, iter=self.iterations, minit="++", seed=rng)
        return self

    def assign(self, feats: np.ndarray) -> np.ndarray:
        assert self.centroids is not None and self.mean is not None and self.std is not None
        z = torch.from_numpy((np.asarray(feats, dtype=np.float64) - self.mean) / self.std).float()
        c = torch.from_numpy(self.centroids).float()
        return torch.cdist(z, c).argmin(1).numpy().astype(np.int64)


def sample_rows(arrays: list[np.ndarray], max_rows: int, seed: int) -> np.ndarray:
    """At most ``max_rows`` rows drawn evenly (seeded) from the concatenation of ``arrays``."""
    total = sum(len(a) for a in arrays)
    stacked = np.concatenate(arrays) if arrays else np.zeros((0, 1))
    if total <= max_rows:
        return stacked
    pick = np.sort(np.random.default_rng(seed).choice(total, size=max_rows, replace=False))
    return stacked[pick]
