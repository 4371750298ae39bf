"""Interferer waveforms for the cross-check's `interference` task, each drawn from its own ranges
(frequencies in cycles/sample). Every function returns a unit-power-while-on signal and its on-mask."""

from __future__ import annotations

import numpy as np
from scipy.signal import resample_poly

from .fsk import fsk
from .linear import constellation


def burst_mask(rng: np.random.Generator, length: int, duty: tuple[float, float]) -> np.ndarray:
    """One contiguous on-period covering a drawn share of the frame at a random position."""
    on = max(16, int(rng.uniform(*duty) * length))
    start = int(rng.integers(0, length - on + 1))
    mask = np.zeros(length, bool)
    mask[start : start + on] = True
    return mask


def tone(rng: np.random.Generator, length: int) -> tuple[np.ndarray, np.ndarray]:
    """CW carrier anywhere in ±0.48 with a slow linear drift."""
    t = np.arange(length)
    f, drift = rng.uniform(-0.48, 0.48), rng.uniform(-2e-6, 2e-6)
    return np.exp(1j * (2 * np.pi * (f * t + drift * t**2 / 2) + rng.uniform(0, 2 * np.pi))), np.ones(length, bool)


def chirp(rng: np.random.Generator, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Pulsed LFM radar: sweep 0.05..0.9 wide, sawtooth up, down or triangular, period 64..2048 samples."""
    t = np.arange(length)
    width, period = rng.uniform(0.05, 0.9), int(2 ** rng.uniform(6, 11))
    centre = rng.uniform(-(1 - width) / 2, (1 - width) / 2)
    ramp = ((t + rng.integers(period)) % period) / period
    shape = rng.integers(3)
    sweep = ramp if shape == 0 else 1 - ramp if shape == 1 else 1 - np.abs(2 * ramp - 1)
    frequency = centre + width * (sweep - 0.5)
    signal = np.exp(1j * 2 * np.pi * np.cumsum(frequency))
    duty = rng.uniform(0.3, 1.0)
    return signal, ramp < duty


def fsk_hopper(rng: np.random.Generator, length: int) -> tuple[np.ndarray, np.ndarray]:
    """GFSK (h 0.5, BT 0.5) hopping over 20..79 channels spanning 0.5..0.95 of the band,
    dwell 64..384 samples, with a short guard gap between hops."""
    channels, span = int(rng.integers(20, 80)), rng.uniform(0.5, 0.95)
    dwell = int(rng.integers(64, 385))
    base = fsk(rng, length, rng.uniform(4, 10), 0.5, 0.5)
    t = np.arange(length)
    hop = (t + rng.integers(dwell)) // dwell
    centres = (rng.integers(channels, size=hop.max() + 1) / (channels - 1) - 0.5) * span
    mask = ((t + rng.integers(dwell)) % dwell) >= dwell // 8
    return base * np.exp(1j * 2 * np.pi * np.cumsum(centres[hop])), mask


def ofdm(rng: np.random.Generator, length: int) -> tuple[np.ndarray, np.ndarray]:
    """OFDM burst: FFT 32/64/128, 50..85 % of subcarriers used, CP 1/16..1/4, QPSK/QAM16/QAM64,
    resampled to occupy 25..80 % of the band at a random centre."""
    size = int(rng.choice([32, 64, 128]))
    used = int(size * rng.uniform(0.5, 0.85)) // 2
    cp = int(size * rng.choice([1 / 16, 1 / 8, 1 / 4]))
    occupancy = rng.uniform(0.25, 0.8)
    up, down = 64, max(1, int(round(64 * occupancy)))
    points = constellation(["QPSK", "QAM16", "QAM64"][rng.integers(3)])
    symbols = int(np.ceil(length * down / up / (size + cp))) + 2
    bins = np.zeros((symbols, size), complex)
    carriers = np.r_[1 : used + 1, size - used : size]
    bins[:, carriers] = points[rng.integers(len(points), size=(symbols, len(carriers)))]
    body = np.fft.ifft(bins, axis=1)
    signal = resample_poly(np.concatenate([body[:, -cp:], body], axis=1).ravel(), up, down)[:length]
    centre = rng.uniform(-(1 - occupancy) / 2, (1 - occupancy) / 2)
    return signal * np.exp(1j * 2 * np.pi * centre * np.arange(length)), burst_mask(rng, length, (0.3, 1.0))


def oqpsk(rng: np.random.Generator, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Half-sine O-QPSK (802.15.4-like), 2..8 samples per chip, Q delayed by one chip."""
    chip = rng.uniform(2, 8)
    t = np.arange(length) / chip + rng.uniform(0, 2)
    i_chips = 2 * rng.integers(2, size=int(t[-1] // 2) + 3) - 1
    q_chips = 2 * rng.integers(2, size=int(t[-1] // 2) + 3) - 1
    i = i_chips[(t // 2).astype(int)] * np.sin(np.pi * (t % 2) / 2)
    q = q_chips[((t - 1) // 2).astype(int) + 1] * np.sin(np.pi * ((t - 1) % 2) / 2)
    offset = rng.uniform(-0.35, 0.35)
    return (i + 1j * q) * np.exp(1j * 2 * np.pi * offset * np.arange(length)), burst_mask(rng, length, (0.4, 1.0))


KINDS = {"tone": tone, "chirp": chirp, "fsk_hopper": fsk_hopper, "ofdm": ofdm, "oqpsk": oqpsk}
