"""Linearly modulated waveforms from `komm` constellations and pulses, at any (non-integer) rate.

Symbols are shaped at OVERSAMPLE samples per symbol with a komm pulse, then resampled to the drawn
rate with a polyphase filter, so the rate, the pulse and its roll-off are all drawn per frame.
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import komm
import numpy as np
from scipy.signal import resample_poly

OVERSAMPLE = 16
PULSES = ("rrc", "rc", "gaussian", "rectangular")
SAMPLES_PER_SYMBOL = (2.2, 14.0)
ROLLOFF = (0.1, 0.6)
GAUSSIAN_BANDWIDTH = (0.3, 0.8)  # half-power bandwidth x symbol period
SPAN = 6  # symbols either side of the pulse centre


@lru_cache(maxsize=None)
def constellation(name: str) -> np.ndarray:
    """Unit-energy points of one digital modulation class, from komm."""
    points = {
        "BPSK": lambda: komm.PSKConstellation(2),
        "QPSK": lambda: komm.PSKConstellation(4, phase_offset=np.pi / 4),
        "8PSK": lambda: komm.PSKConstellation(8),
        "PAM4": lambda: komm.PAMConstellation(4),
        "QAM16": lambda: komm.QAMConstellation(16),
        "QAM64": lambda: komm.QAMConstellation(64),
    }[name]().matrix.ravel().astype(complex)
    return points / np.sqrt(np.mean(np.abs(points) ** 2))


def pulse_taps(kind: str, shape: float) -> np.ndarray:
    """komm pulse sampled at OVERSAMPLE; `shape` is the roll-off (rc, rrc) or bandwidth (gaussian)."""
    if kind == "rrc":
        pulse = komm.RaisedCosinePulse(shape).root()
    elif kind == "rc":
        pulse = komm.RaisedCosinePulse(shape)
    elif kind == "gaussian":
        pulse = komm.GaussianPulse(shape)
    else:
        return np.ones(OVERSAMPLE)
    return np.asarray(pulse.taps(OVERSAMPLE, span=(-SPAN, SPAN)), float)


def draw_pulse(rng: np.random.Generator) -> tuple[str, float]:
    kind = PULSES[rng.integers(len(PULSES))]
    return kind, float(rng.uniform(*(GAUSSIAN_BANDWIDTH if kind == "gaussian" else ROLLOFF)))


def waveform(rng: np.random.Generator, points: np.ndarray, length: int, samples_per_symbol: float,
             pulse: tuple[str, float]) -> np.ndarray:
    """`length` samples of random symbols from `points`, shaped and at `samples_per_symbol`,
    starting at a random symbol phase."""
    rate = Fraction(samples_per_symbol / OVERSAMPLE).limit_denominator(48)
    symbols = int(np.ceil((length + 2 * SPAN * samples_per_symbol) / samples_per_symbol)) + 2
    up = np.zeros(symbols * OVERSAMPLE, complex)
    up[::OVERSAMPLE] = points[rng.integers(len(points), size=symbols)]
    shaped = np.convolve(up, pulse_taps(*pulse))
    if rate != 1:
        shaped = resample_poly(shaped, rate.numerator, rate.denominator)
    start = int(SPAN * samples_per_symbol) + int(rng.integers(0, max(1, int(samples_per_symbol))))
    return shaped[start : start + length]
