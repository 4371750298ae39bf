"""The cross-check's single-antenna receive chain: clustered multipath with Doppler, carrier and
phase errors, IQ imbalance, and AWGN over the whole sampled band.

Written apart from xapp.data on purpose: delays are fractional (sinc-interpolated), path gains
fade within the frame (Clarke sum of sinusoids), and the power-delay profile is a two-cluster
Saleh-Valenzuela draw rather than one exponential.
"""

from __future__ import annotations

import numpy as np

SINC_HALF_WIDTH = 6  # taps either side of a fractional delay
LEAD = 48  # sources are made this many samples longer than the frame, so delayed paths start filled


def unit_power(x: np.ndarray) -> np.ndarray:
    """Scale along the last two axes to unit mean |x|^2 (the contract's frame normalisation)."""
    power = np.mean(np.abs(x) ** 2, axis=(-2, -1), keepdims=True) if x.ndim > 1 else np.mean(np.abs(x) ** 2)
    return (x / np.sqrt(np.maximum(power, 1e-30))).astype(np.complex64)


def add_noise(rng: np.random.Generator, x: np.ndarray, snr_db: float) -> np.ndarray:
    """Complex white noise at `snr_db` below the signal's mean power, per row (per antenna)."""
    power = np.mean(np.abs(x) ** 2, axis=-1, keepdims=True)
    sigma = np.sqrt(power / 10 ** (snr_db / 10) / 2)
    return x + sigma * (rng.standard_normal(x.shape) + 1j * rng.standard_normal(x.shape))


def delayed(x: np.ndarray, delay: float, length: int) -> np.ndarray:
    """The last `length` samples of x (made LEAD samples longer) delayed by `delay` < LEAD samples,
    through Hann-windowed sinc taps."""
    whole = int(np.floor(delay))
    k = np.arange(-SINC_HALF_WIDTH, SINC_HALF_WIDTH + 1)
    taps = np.sinc(k - (delay - whole)) * np.hanning(2 * SINC_HALF_WIDTH + 3)[1:-1]
    start = len(x) - length + SINC_HALF_WIDTH - whole
    return np.convolve(x, taps / taps.sum())[start : start + length]


def clarke_fading(rng: np.random.Generator, length: int, doppler: float, sinusoids: int = 12) -> np.ndarray:
    """Unit-power Rayleigh gain over `length` samples with max Doppler `doppler` (cycles/sample)."""
    alpha = rng.uniform(0, 2 * np.pi, sinusoids)
    phase = rng.uniform(0, 2 * np.pi, (2, sinusoids))
    t = np.arange(length)[:, None]
    arg = 2 * np.pi * doppler * np.cos(alpha) * t
    g = np.cos(arg + phase[0]).sum(1) + 1j * np.cos(arg + phase[1]).sum(1)
    return g / np.sqrt(sinusoids)


def multipath(rng: np.random.Generator, x: np.ndarray, length: int) -> np.ndarray:
    """x has LEAD extra leading samples. Two-cluster Saleh-Valenzuela channel with fractional delays and per-path Clarke fading;
    a quarter of frames see a Rician first path (K 0..12 dB)."""
    doppler = 10 ** rng.uniform(-5, -2.3)
    delays, powers = [], []
    for cluster_delay in (0.0, min(rng.exponential(4.0), LEAD / 2)):
        cluster_power = 1.0 if cluster_delay == 0 else 10 ** rng.uniform(-1.5, -0.3)
        arrival = cluster_delay
        for _ in range(rng.integers(1, 4)):
            delays.append(arrival)
            powers.append(cluster_power * np.exp(-(arrival - cluster_delay) / rng.uniform(0.5, 3.0)))
            arrival = min(arrival + rng.exponential(1.2), LEAD - SINC_HALF_WIDTH - 1)
    powers = np.array(powers) / np.sum(powers)
    out = np.zeros(length, complex)
    rician = rng.random() < 0.25
    for index, (delay, power) in enumerate(zip(delays, powers)):
        path = delayed(x, delay, length)
        gain = clarke_fading(rng, length, doppler)
        if index == 0 and rician:
            k = 10 ** rng.uniform(0, 1.2)
            gain = (np.sqrt(k) * np.exp(1j * rng.uniform(0, 2 * np.pi)) + gain) / np.sqrt(k + 1)
        out += np.sqrt(power) * gain * path
    return out


def receiver(rng: np.random.Generator, x: np.ndarray, length: int, max_cfo: float) -> np.ndarray:
    """x has LEAD extra leading samples; returns `length`. Multipath (80 % of frames; the rest a flat static phase), carrier offset up to ±max_cfo
    cycles/sample, Wiener phase noise and IQ imbalance (gain ±0.6 dB, skew ±4 degrees)."""
    if rng.random() < 0.8:
        y = multipath(rng, x, length)
    else:
        y = x[-length:] * np.exp(1j * rng.uniform(0, 2 * np.pi))
    t = np.arange(length)
    y = y * np.exp(1j * (2 * np.pi * rng.uniform(-max_cfo, max_cfo) * t
                         + np.cumsum(rng.normal(0, rng.uniform(0, 0.01), length))))
    gain, skew = 10 ** (rng.uniform(-0.6, 0.6) / 20), np.deg2rad(rng.uniform(-4, 4))
    return y.real + 1j * gain * (np.cos(skew) * y.imag + np.sin(skew) * y.real)
