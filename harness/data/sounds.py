"""Procedural non-speech sounds: the classes of the embedded non-speech corpus and the noise source
of the embedded speech corpus.

Each class is a small generator ``(rng, n_samples, sample_rate) -> float32`` built from filtered
noise, oscillators and decaying resonances, with its parameters drawn from ``rng`` so that two
clips of one class differ while the class keeps its character. Output is scaled to unit RMS.
Written here (no library synthesizes such classes); numpy and scipy.signal do the signal work.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Generator = Callable[[np.random.Generator, int, int], np.ndarray]


def _unit_rms(x: np.ndarray) -> np.ndarray:
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    return (x / rms if rms > 0 else x).astype(np.float32)


def _band(x: np.ndarray, sr: int, lo: float | None, hi: float | None, order: int = 4) -> np.ndarray:
    from scipy import signal  # on use: registering plugins must not load scipy
    nyq = sr / 2
    if lo and hi:
        sos = signal.butter(order, [lo / nyq, min(hi / nyq, 0.99)], btype="band", output="sos")
    elif lo:
        sos = signal.butter(order, lo / nyq, btype="high", output="sos")
    else:
        sos = signal.butter(order, min((hi or nyq) / nyq, 0.99), btype="low", output="sos")
    return signal.sosfilt(sos, x)


def _envelope(rng: np.random.Generator, n: int, sr: int, rate_hz: float, depth: float) -> np.ndarray:
    """A smooth random envelope in [1 - depth, 1] changing at about ``rate_hz``."""
    knots = max(2, int(n / sr * rate_hz) + 2)
    values = rng.uniform(1 - depth, 1, knots)
    return np.interp(np.arange(n), np.linspace(0, n - 1, knots), values)


def _events(rng: np.random.Generator, n: int, sr: int, per_second: float) -> np.ndarray:
    """Onset sample indices of a Poisson process."""
    count = rng.poisson(max(per_second * n / sr, 0.5)) + 1
    return np.sort(rng.integers(0, n, count))


def _place(out: np.ndarray, onsets: np.ndarray, grain: Callable[[], np.ndarray]) -> np.ndarray:
    for t in onsets:
        g = grain()
        m = min(len(g), len(out) - t)
        out[t : t + m] += g[:m]
    return out


def _damped(sr: int, freq: float, decay_s: float, length_s: float, phase: float = 0.0) -> np.ndarray:
    t = np.arange(int(length_s * sr)) / sr
    return np.sin(2 * np.pi * freq * t + phase) * np.exp(-t / decay_s)


# ---------------------------------------------------------------------------- classes


def rain(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    bed = _band(rng.standard_normal(n), sr, 800, 6000) * 0.4
    drops = np.zeros(n)
    drops[rng.integers(0, n, int(n / sr * rng.uniform(150, 400)))] = rng.uniform(0.5, 1.5)
    drops = _band(drops, sr, 1500, 7000)
    return _unit_rms(bed + drops * 3)


def wind(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    noise = _band(rng.standard_normal(n), sr, None, rng.uniform(300, 900), order=2)
    return _unit_rms(noise * _envelope(rng, n, sr, rng.uniform(0.5, 2), 0.9))


def engine(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    f0 = rng.uniform(25, 70) * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t))
    phase = 2 * np.pi * np.cumsum(f0) / sr
    tone = sum(np.sin(k * phase) / k for k in range(1, 12))
    rumble = _band(rng.standard_normal(n), sr, 40, 400) * 0.5
    return _unit_rms(tone + rumble)


def bird(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    def chirp() -> np.ndarray:
        length = int(rng.uniform(0.05, 0.2) * sr)
        t = np.arange(length) / sr
        f = np.linspace(rng.uniform(2000, 5000), rng.uniform(2000, 6000), length)
        f = f + 300 * np.sin(2 * np.pi * rng.uniform(20, 60) * t)
        return np.sin(2 * np.pi * np.cumsum(f) / sr) * np.hanning(length)

    return _unit_rms(_place(np.zeros(n), _events(rng, n, sr, rng.uniform(3, 8)), chirp) + 1e-3)


def siren(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    centre, swing = rng.uniform(700, 1100), rng.uniform(200, 400)
    f = centre + swing * np.sin(2 * np.pi * rng.uniform(0.2, 0.8) * t + rng.uniform(0, 6.3))
    phase = 2 * np.pi * np.cumsum(f) / sr
    return _unit_rms(np.sin(phase) + 0.3 * np.sin(2 * phase))


def bell(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    base = rng.uniform(300, 900)
    ratios = (1.0, 2.0, 2.4, 3.0, 4.2, 5.4)

    def strike() -> np.ndarray:
        decay = rng.uniform(0.4, 1.2)
        return sum(_damped(sr, base * r, decay / r**0.5, 2.0) / (i + 1) for i, r in enumerate(ratios))

    return _unit_rms(_place(np.zeros(n), _events(rng, n, sr, rng.uniform(0.5, 1.5)), strike) + 1e-4)


def knock(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    def hit() -> np.ndarray:
        click = rng.standard_normal(int(0.01 * sr)) * np.hanning(int(0.01 * sr))
        body = _damped(sr, rng.uniform(120, 300), rng.uniform(0.01, 0.04), 0.15)
        body[: len(click)] += click * 0.3
        return body

    onsets = []
    t = int(rng.uniform(0, 0.3) * sr)
    while t < n:
        for _ in range(int(rng.integers(2, 5))):
            onsets.append(t)
            t += int(rng.uniform(0.12, 0.25) * sr)
        t += int(rng.uniform(0.5, 1.2) * sr)
    return _unit_rms(_place(np.zeros(n), np.array([o for o in onsets if o < n], dtype=int), hit) + 1e-4)


def drip(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    def drop() -> np.ndarray:
        length = int(0.06 * sr)
        t = np.arange(length) / sr
        f = np.linspace(rng.uniform(500, 900), rng.uniform(1200, 2500), length)
        return np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / 0.015)

    return _unit_rms(_place(np.zeros(n), _events(rng, n, sr, rng.uniform(2, 6)), drop) + 1e-4)


def music(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12])
    root = rng.uniform(180, 400)
    out = np.zeros(n)
    t0, note_len = 0, int(rng.uniform(0.15, 0.4) * sr)
    t = np.arange(note_len) / sr
    env = np.minimum(1, t / 0.01) * np.exp(-t / rng.uniform(0.1, 0.4))
    while t0 < n:
        f = root * 2 ** (rng.choice(scale) / 12)
        note = sum(np.sin(2 * np.pi * k * f * t) / k**1.5 for k in range(1, 6)) * env
        m = min(note_len, n - t0)
        out[t0 : t0 + m] += note[:m]
        t0 += note_len
    return _unit_rms(out)


def bark(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    def woof() -> np.ndarray:
        from scipy import signal  # on use: registering plugins must not load scipy
        length = int(rng.uniform(0.12, 0.25) * sr)
        t = np.arange(length) / sr
        f0 = rng.uniform(250, 500) * (1 - 0.3 * t / t[-1])
        pulses = signal.sawtooth(2 * np.pi * np.cumsum(f0) / sr)
        noisy = pulses + 0.5 * rng.standard_normal(length)
        return _band(noisy, sr, 400, 2500) * np.hanning(length)

    return _unit_rms(_place(np.zeros(n), _events(rng, n, sr, rng.uniform(1, 3)), woof) + 1e-4)


def applause(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    from scipy import signal  # on use: registering plugins must not load scipy
    clicks = np.zeros(n)
    clicks[rng.integers(0, n, int(n / sr * rng.uniform(300, 900)))] = rng.uniform(0.3, 1.0)
    clicks = signal.lfilter([1.0], [1.0, -0.6], clicks)
    return _unit_rms(_band(clicks, sr, 600, 7000) * _envelope(rng, n, sr, 1, 0.4))


def heartbeat(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    period = 60 / rng.uniform(55, 110)
    out = np.zeros(n)
    t = int(rng.uniform(0, period) * sr)
    while t < n:
        for offset, amp in ((0, 1.0), (int(0.28 * period * sr), 0.6)):
            thump = _damped(sr, rng.uniform(40, 70), 0.04, 0.2) * amp
            m = min(len(thump), n - t - offset)
            if m > 0:
                out[t + offset : t + offset + m] += thump[:m]
        t += int(period * sr)
    return _unit_rms(out + 1e-4)


def beep(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    from scipy import signal  # on use: registering plugins must not load scipy
    f = rng.uniform(800, 3000)
    on, off = rng.uniform(0.08, 0.3), rng.uniform(0.08, 0.4)
    t = np.arange(n) / sr
    gate = (np.mod(t, on + off) < on).astype(float)
    return _unit_rms(signal.square(2 * np.pi * f * t) * 0.3 * gate + 1e-4)


def cricket(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    carrier = np.sin(2 * np.pi * rng.uniform(3500, 5500) * t)
    pulse = (np.sin(2 * np.pi * rng.uniform(20, 40) * t) > 0.3).astype(float)
    chirp_rate = rng.uniform(1.5, 4)
    gate = (np.mod(t * chirp_rate, 1) < rng.uniform(0.3, 0.6)).astype(float)
    return _unit_rms(carrier * pulse * gate + 1e-4)


def ocean(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    swell = 0.55 + 0.45 * np.sin(2 * np.pi * rng.uniform(0.08, 0.25) * t + rng.uniform(0, 6.3))
    noise = _band(rng.standard_normal(n), sr, 100, rng.uniform(1500, 3000), order=2)
    return _unit_rms(noise * swell**2)


def telephone(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    t = np.arange(n) / sr
    tone = np.sin(2 * np.pi * 440 * t) + np.sin(2 * np.pi * 480 * t)
    ring = (np.sin(2 * np.pi * 20 * t) > 0).astype(float)
    on = rng.uniform(0.8, 2.0)
    gate = (np.mod(t + rng.uniform(0, 3), on + rng.uniform(1.0, 3.0)) < on).astype(float)
    return _unit_rms(tone * (0.6 + 0.4 * ring) * gate + 1e-4)


#: class name (AudioSet-style display name) -> generator
CLASSES: dict[str, Generator] = {
    "Rain": rain,
    "Wind": wind,
    "Engine": engine,
    "Bird": bird,
    "Siren": siren,
    "Bell": bell,
    "Knock": knock,
    "Drip": drip,
    "Music": music,
    "Bark": bark,
    "Applause": applause,
    "Heart sounds, heartbeat": heartbeat,
    "Beep, bleep": beep,
    "Cricket": cricket,
    "Ocean": ocean,
    "Telephone bell ringing": telephone,
}


def generate(name: str, rng: np.random.Generator, n_samples: int, sample_rate: int = 16000) -> np.ndarray:
    """``n_samples`` of class ``name`` at unit RMS."""
    return CLASSES[name](rng, n_samples, sample_rate)


def noise(rng: np.random.Generator, n_samples: int, sample_rate: int = 16000) -> np.ndarray:
    """A background for speech: one random class over coloured noise, unit RMS."""
    from scipy import signal  # on use: registering plugins must not load scipy
    name = list(CLASSES)[int(rng.integers(len(CLASSES)))]
    colour = rng.uniform(0.0, 0.98)
    bed = signal.lfilter([1.0], [1.0, -colour], rng.standard_normal(n_samples))
    mix = rng.uniform(0.3, 1.0)
    return _unit_rms(mix * generate(name, rng, n_samples, sample_rate) + (1 - mix) * _unit_rms(bed))
