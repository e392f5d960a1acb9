"""Per-utterance nuisance, as real recordings have: reverberation, channel colouring, background
noise and level (speed and pitch perturbation happen at synthesis and resampling); and the voice
quality part of a speaking style (spectral tilt, saturation).

The order follows the physics of a recording: the room (reverb) colours the source, the
microphone and channel (EQ) colour the room's output, noise adds at the microphone, then the level
is set. Every draw comes from the utterance's own generator, so the result depends on its seed only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.api import sounds

#: edges of the EQ bands in Hz (gain drawn at each edge, interpolated linearly in between)
EQ_FREQS = (0.0, 150.0, 300.0, 600.0, 1200.0, 2400.0, 4000.0, 6000.0, 8000.0)


@dataclass(frozen=True)
class Nuisance:
    """The knobs (defaults and meaning: the synthetic corpus parameters)."""

    reverb_prob: float
    rt60: tuple[float, float]
    drr_db: tuple[float, float]
    eq_db: float
    noise_prob: float
    snr_db: tuple[float, float]
    peak: tuple[float, float]


def reverb(wav: np.ndarray, rng: np.random.Generator, cfg: Nuisance, sr: int) -> np.ndarray:
    """Convolve with an exponentially decaying noise tail (RT60 drawn from ``cfg.rt60``), same length."""
    from scipy import signal  # on use: registering plugins must not load scipy
    rt60 = rng.uniform(*cfg.rt60)
    n = max(2, int(min(rt60, 1.0) * sr))
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.908 * t / rt60)  # -60 dB at t = rt60
    tail[0] = 0.0
    tail *= 10 ** (-rng.uniform(*cfg.drr_db) / 20) / max(np.sqrt(np.sum(tail**2)), 1e-12)
    tail[0] = 1.0
    return signal.fftconvolve(wav, tail)[: len(wav)]


def equalise(wav: np.ndarray, rng: np.random.Generator, cfg: Nuisance, sr: int) -> np.ndarray:
    """A random smooth frequency response: gains of ±``cfg.eq_db`` dB at the band edges (linear-phase FIR)."""
    from scipy import signal  # on use: registering plugins must not load scipy
    freqs = np.array([f for f in EQ_FREQS if f < sr / 2] + [sr / 2])
    gains = 10 ** (rng.uniform(-cfg.eq_db, cfg.eq_db, len(freqs)) / 20)
    taps = signal.firwin2(129, freqs, gains, fs=sr)
    return signal.fftconvolve(wav, taps, mode="same")


def add_noise(wav: np.ndarray, rng: np.random.Generator, cfg: Nuisance, sr: int) -> np.ndarray:
    """Add a procedural background (:func:`harness.data.sounds.noise`) at an SNR drawn from ``cfg.snr_db``."""
    noise = sounds.noise(rng, len(wav), sr).astype(np.float64)
    speech_power = float(np.mean(wav**2))
    snr = rng.uniform(*cfg.snr_db)
    return wav + noise * np.sqrt(speech_power / 10 ** (snr / 10))


def voice_quality(wav: np.ndarray, tilt_db: float, drive: float, sr: int) -> np.ndarray:
    """Part of a speaking style, not nuisance: a spectral tilt (a shelf of ``tilt_db`` dB above
    about 1 kHz: positive is a tenser, brighter voice) and soft saturation (``drive`` > 0)."""
    from scipy import signal  # on use: registering plugins must not load scipy
    x = wav.astype(np.float64)
    if tilt_db:
        freqs = np.array([0.0, 700.0, 1500.0, sr / 2])
        gains = 10 ** (np.array([0.0, 0.0, tilt_db, tilt_db]) / 20)
        x = signal.fftconvolve(x, signal.firwin2(65, freqs, gains, fs=sr), mode="same")
    if drive > 0:
        peak = max(float(np.max(np.abs(x))), 1e-9)
        x = np.tanh(drive * x / peak) / np.tanh(drive) * peak
    return x


def apply(wav: np.ndarray, rng: np.random.Generator, cfg: Nuisance | None, sr: int = 16000) -> np.ndarray:
    """The whole chain (``cfg`` None: clean, level kept); float32 out, peak below 1."""
    x = wav.astype(np.float64)
    if cfg is None:
        peak = float(np.max(np.abs(x)))
        return (x * (0.99 / peak if peak > 0.99 else 1.0)).astype(np.float32)
    if rng.random() < cfg.reverb_prob:
        x = reverb(x, rng, cfg, sr)
    x = equalise(x, rng, cfg, sr)
    if rng.random() < cfg.noise_prob:
        x = add_noise(x, rng, cfg, sr)
    peak = rng.uniform(*cfg.peak)
    return (x * (peak / max(float(np.max(np.abs(x))), 1e-9))).astype(np.float32)
