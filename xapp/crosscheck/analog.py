"""Analog AM (DSB with or without carrier, over-modulation; USB or LSB) and wideband FM with a
message made of a few tones plus shaped noise (a different message model from xapp.data's)."""

from __future__ import annotations

import numpy as np

MESSAGE_BANDWIDTH = (0.004, 0.06)  # cycles/sample, highest message frequency
AM_DEPTH = (0.2, 1.3)  # > 1 over-modulates
SSB_PILOT = (0.0, 0.3)  # residual carrier amplitude against the message RMS
FM_DEVIATION = (0.02, 0.25)  # peak frequency deviation, cycles/sample


def message(rng: np.random.Generator, length: int) -> np.ndarray:
    """A real message with peak 1: 2..6 tones below a drawn bandwidth plus noise shaped to it."""
    top = rng.uniform(*MESSAGE_BANDWIDTH)
    t = np.arange(length)
    tones = sum(rng.uniform(0.2, 1) * np.cos(2 * np.pi * rng.uniform(0.05, 1) * top * t + rng.uniform(0, 2 * np.pi))
                for _ in range(rng.integers(2, 7)))
    spectrum = np.fft.rfft(rng.standard_normal(length))
    spectrum[np.fft.rfftfreq(length) > top] = 0
    noise = np.fft.irfft(spectrum, length)
    m = tones + rng.uniform(0, 2) * noise / max(np.std(noise), 1e-12) * np.std(tones)
    return m / np.max(np.abs(m))


def am_dsb(rng: np.random.Generator, length: int) -> np.ndarray:
    """Full carrier at a drawn depth in half the frames, suppressed carrier in the other half."""
    m = message(rng, length)
    return 1 + rng.uniform(*AM_DEPTH) * m if rng.random() < 0.5 else m.astype(complex)


def am_ssb(rng: np.random.Generator, length: int) -> np.ndarray:
    """Upper or lower sideband (one-sided spectrum of the message), with a small residual carrier."""
    m = message(rng, length)
    spectrum = np.fft.fft(m)
    freqs = np.fft.fftfreq(length)
    keep = freqs > 0 if rng.random() < 0.5 else freqs < 0
    side = np.fft.ifft(np.where(keep, 2 * spectrum, 0))
    return side + rng.uniform(*SSB_PILOT) * np.std(side)


def wbfm(rng: np.random.Generator, length: int) -> np.ndarray:
    m = message(rng, length)
    return np.exp(1j * (2 * np.pi * rng.uniform(*FM_DEVIATION) * np.cumsum(m) + rng.uniform(0, 2 * np.pi)))
