"""Continuous-phase FSK (rectangular frequency pulse) and GFSK (Gaussian-filtered), written from
the closed-form frequency pulse, at any symbol rate."""

from __future__ import annotations

import numpy as np
from scipy.special import erf

CPFSK_INDEX = (0.3, 1.0)
GFSK_INDEX = (0.25, 0.7)
GFSK_BT = (0.25, 0.7)
SAMPLES_PER_SYMBOL = (3.0, 14.0)
WINDOW = 3  # symbols of the Gaussian frequency pulse kept either side


def gaussian_frequency_pulse(t: np.ndarray, bt: float) -> np.ndarray:
    """A unit rectangle of one symbol convolved with a Gaussian of bandwidth-time product bt."""
    sigma = np.sqrt(np.log(2)) / (2 * np.pi * bt)
    scale = 1 / (np.sqrt(2) * sigma)
    return 0.5 * (erf((t + 0.5) * scale) - erf((t - 0.5) * scale))


def fsk(rng: np.random.Generator, length: int, samples_per_symbol: float, index: float,
        bt: float | None, levels: int = 2) -> np.ndarray:
    """Unit-envelope FSK; frequency deviation index/(2T) per unit symbol; bt None = CPFSK."""
    t = np.arange(length) / samples_per_symbol + rng.uniform(0, 1)  # time in symbols
    first = int(np.floor(t[0])) - WINDOW
    count = int(np.ceil(t[-1])) + WINDOW - first + 1
    symbols = 2 * rng.integers(levels, size=count) - (levels - 1)
    if bt is None:
        frequency = symbols[np.floor(t).astype(int) - first].astype(float)
    else:
        frequency = np.zeros(length)
        centre = np.floor(t).astype(int)
        for shift in range(-WINDOW, WINDOW + 1):
            k = centre + shift
            frequency += symbols[k - first] * gaussian_frequency_pulse(t - k - 0.5, bt)
    phase = np.pi * index * np.cumsum(frequency) / samples_per_symbol
    return np.exp(1j * (phase + rng.uniform(0, 2 * np.pi)))
