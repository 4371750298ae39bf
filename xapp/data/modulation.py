"""`modulation`: the 11 RadioML 2016.10a classes through a per-frame fading channel."""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import signal

from . import dsp

CLASSES = ("8PSK", "AM-DSB", "AM-SSB", "BPSK", "CPFSK", "GFSK", "PAM4", "QAM16", "QAM64", "QPSK", "WBFM")
SNR_DB = (-20.0, 18.0)
SPS = 8  # samples per symbol, as in RadioML 2016.10a

_RRC = dsp.rrc_taps(SPS)
_GAUSS = dsp.gaussian_frequency_pulse(SPS, bt=0.5)


def _square_qam(m: int) -> np.ndarray:
    side = int(np.sqrt(m))
    levels = np.arange(side) * 2 - (side - 1)
    points = (levels[:, None] + 1j * levels[None, :]).ravel()
    return points / np.sqrt(np.mean(np.abs(points) ** 2))


CONSTELLATIONS = {
    "BPSK": np.array([1, -1], np.complex64),
    "QPSK": np.exp(1j * np.pi / 4 * (2 * np.arange(4) + 1)),
    "8PSK": np.exp(2j * np.pi * np.arange(8) / 8),
    "QAM16": _square_qam(16),
    "QAM64": _square_qam(64),
    "PAM4": np.array([-3, -1, 1, 3]) / np.sqrt(5),  # real-valued levels
}


def linear(name: str) -> Callable[[np.random.Generator, int, int], np.ndarray]:
    points = CONSTELLATIONS[name].astype(np.complex64)

    def baseband(rng: np.random.Generator, n: int, length: int) -> np.ndarray:
        symbols = points[rng.integers(0, len(points), (n, dsp.symbols_for(length, SPS, _RRC)))]
        return dsp.shape(symbols, _RRC, SPS, length)

    return baseband


def fsk(h: float, pulse: np.ndarray | None) -> Callable[[np.random.Generator, int, int], np.ndarray]:
    """Binary continuous-phase FSK with modulation index h; pulse=None is rectangular (CPFSK)."""

    def baseband(rng: np.random.Generator, n: int, length: int) -> np.ndarray:
        bits = rng.integers(0, 2, (n, dsp.symbols_for(length, SPS, _GAUSS))).astype(np.float32) * 2 - 1
        if pulse is None:
            freq = np.repeat(bits, SPS, axis=-1)[:, :length]
        else:
            freq = dsp.shape(bits, pulse, SPS, length)
        # phase advances pi*h per symbol: h/(2*SPS) cycles per sample per unit frequency
        return dsp.continuous_phase(freq * np.float32(h / (2 * SPS)), rng.uniform(-np.pi, np.pi, n))

    return baseband


def message(rng: np.random.Generator, n: int, length: int) -> np.ndarray:
    """Band-limited audio-like message (no DC), unit RMS."""
    return dsp.band_limited(rng, n, length, f_lo=0.004, f_hi=rng.uniform(0.02, 0.06, n))


def am_dsb(rng: np.random.Generator, n: int, length: int) -> np.ndarray:
    m = message(rng, n, length)
    m /= np.max(np.abs(m), axis=-1, keepdims=True)
    depth = rng.uniform(0.3, 0.9, (n, 1)).astype(np.float32)
    return (1 + depth * m).astype(np.complex64)  # full carrier


def am_ssb(rng: np.random.Generator, n: int, length: int) -> np.ndarray:
    return signal.hilbert(message(rng, n, length), axis=-1).astype(np.complex64)  # upper sideband


def wbfm(rng: np.random.Generator, n: int, length: int) -> np.ndarray:
    m = message(rng, n, length)
    m /= np.max(np.abs(m), axis=-1, keepdims=True)
    deviation = rng.uniform(0.05, 0.15, (n, 1)).astype(np.float32)  # peak, cycles/sample
    return dsp.continuous_phase(deviation * m, rng.uniform(-np.pi, np.pi, n))


BASEBAND: dict[str, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    "8PSK": linear("8PSK"),
    "AM-DSB": am_dsb,
    "AM-SSB": am_ssb,
    "BPSK": linear("BPSK"),
    "CPFSK": fsk(0.5, None),
    "GFSK": fsk(0.32, _GAUSS),
    "PAM4": linear("PAM4"),
    "QAM16": linear("QAM16"),
    "QAM64": linear("QAM64"),
    "QPSK": linear("QPSK"),
    "WBFM": wbfm,
}


def baseband_by_label(rng: np.random.Generator, y: np.ndarray, length: int) -> np.ndarray:
    """Baseband [n, length] for label vector y over CLASSES (one batch per class); not normalised."""
    s = np.empty((len(y), length), np.complex64)
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        s[rows] = BASEBAND[CLASSES[label]](rng, len(rows), length)
    return s


def frames(
    rng: np.random.Generator, y: np.ndarray, snr: np.ndarray, length: int, impairments: bool, clean: bool
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    s = baseband_by_label(rng, y, length + dsp.PAD)
    x, meta = dsp.single_antenna_channel(rng, s, length, impairments)
    return dsp.observe(rng, x[:, None, :], snr, clean, meta), y, meta
