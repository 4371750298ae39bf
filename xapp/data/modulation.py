"""`modulation`: the 11 RadioML 2016.10a classes, each drawn per frame over the ranges in which
independent transmitters differ (symbol rate, pulse shape, modulation index, AM/FM variants), then
through the domain-randomised receive chain (xapp/data/channel.py). Ranges: xapp/data/CARD.md."""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import signal

from . import channel, dsp, pulses

CLASSES = ("8PSK", "AM-DSB", "AM-SSB", "BPSK", "CPFSK", "GFSK", "PAM4", "QAM16", "QAM64", "QPSK", "WBFM")
SNR_DB = (-20.0, 18.0)
SPS = (2.0, 16.0)  # samples per symbol, log-uniform, any real value
PULSE_SHARES = {"rrc": 0.4, "rc": 0.25, "rect": 0.15, "gauss": 0.2}
ROLLOFF = (0.1, 0.5)  # RRC and RC
PULSE_BT = (0.25, 1.0)  # Gaussian symbol pulse
CPFSK_INDEX = (0.3, 1.0)
GFSK_INDEX, GFSK_BT = (0.25, 0.7), (0.25, 0.6)
FOUR_LEVEL_FSK_SHARE = 0.2
MESSAGE_BW = (0.004, 0.08)  # analog message bandwidth, cycles/sample, log-uniform
AM_CARRIER_SHARE, AM_DEPTH = 0.6, (0.2, 1.3)  # DSB with a carrier (depth > 1: over-modulated), else DSB-SC
SSB_PILOT_SHARE = 0.1  # SSB with a weak residual carrier
FM_DEVIATION = (0.02, 0.25)  # peak, cycles/sample
MAX_OCCUPIED = 1.0  # FSK: Carson bandwidth at most the whole band (no aliased tones)

Baseband = Callable[[np.random.Generator, int, int], tuple[np.ndarray, dict[str, np.ndarray]]]


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


def symbol_rates(rng: np.random.Generator, n: int) -> np.ndarray:
    return channel.log_uniform(rng, *SPS, n)


def linear(name: str) -> Baseband:
    """Random symbols of `name`'s constellation at a random rate, timing and pulse (RRC/RC with a random
    roll-off, rectangular, or Gaussian)."""
    points = CONSTELLATIONS[name].astype(np.complex64)
    bank_kind = np.array([pulses.KINDS.index(k) for k in PULSE_SHARES])  # PULSE_SHARES order -> bank kind

    def baseband(rng: np.random.Generator, n: int, length: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        sps = symbol_rates(rng, n)
        kind = rng.choice(len(bank_kind), n, p=list(PULSE_SHARES.values()))
        rolloff = rng.uniform(*ROLLOFF, n)
        bt = rng.uniform(*PULSE_BT, n)
        value = np.select([kind <= 1, kind == 3], [rolloff, bt], np.nan)
        rows = pulses.SYMBOL_PULSES.rows(bank_kind[kind], value)
        symbols = points[rng.integers(0, len(points), (n, pulses.symbols_needed(length, sps)))]
        s = pulses.shape(symbols, pulses.SYMBOL_PULSES, rows, sps, rng.random(n), length)
        excess = np.select([kind <= 1, kind == 2], [rolloff, 1.0], 2 * 0.3 / np.maximum(bt, 0.25))
        return s, {"sps": sps, "pulse": kind, "rolloff": np.where(kind <= 1, rolloff, np.nan),
                   "bandwidth": (1 + excess) / sps}

    return baseband


def fsk(gaussian: bool) -> Baseband:
    """Continuous-phase FSK, 2 or 4 levels at a random rate and modulation index; gaussian=True smooths
    the frequency pulse with a random bandwidth-time product (GFSK), else it is rectangular (CPFSK)."""
    index_range = GFSK_INDEX if gaussian else CPFSK_INDEX

    def baseband(rng: np.random.Generator, n: int, length: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        h = rng.uniform(*index_range, n)
        levels = np.where(rng.random(n) < FOUR_LEVEL_FSK_SHARE, 4, 2)
        # the fastest rates are kept for indices and level counts whose tones stay inside the band
        sps = np.maximum(symbol_rates(rng, n), 2 * (h * (levels - 1) / 2 + 1) / MAX_OCCUPIED)
        bt = rng.uniform(*GFSK_BT, n) if gaussian else np.full(n, np.nan)
        kind = np.full(n, pulses.KINDS.index("gauss" if gaussian else "rect"))
        rows = pulses.FREQUENCY_PULSES.rows(kind, np.nan_to_num(bt))
        draw = rng.integers(0, 4, (n, pulses.symbols_needed(length, sps)))
        symbols = np.where(levels[:, None] == 4, 2 * draw - 3, 2 * (draw % 2) - 1).astype(np.float32)
        freq = pulses.shape(symbols, pulses.FREQUENCY_PULSES, rows, sps, rng.random(n), length)
        freq *= (h / (2 * sps)).astype(np.float32)[:, None]  # phase advances pi*h per symbol and unit level
        s = dsp.continuous_phase(freq, rng.uniform(-np.pi, np.pi, n))
        peak = h * (levels - 1) / (2 * sps)
        return s, {"sps": sps, "fsk_index": h, "fsk_bt": bt, "fsk_levels": levels, "bandwidth": 2 * peak + 2 / sps}

    return baseband


def message(rng: np.random.Generator, n: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Band-limited audio-like message (no DC), unit RMS, and its bandwidth."""
    bw = np.maximum(channel.log_uniform(rng, *MESSAGE_BW, n), 1.5 / length)  # short frames: >= 1 FFT bin
    return dsp.band_limited(rng, n, length, f_lo=0.002, f_hi=bw), bw


def am_dsb(rng: np.random.Generator, n: int, length: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    m, bw = message(rng, n, length)
    m /= np.max(np.abs(m), axis=-1, keepdims=True)
    carrier = rng.random(n) < AM_CARRIER_SHARE
    depth = rng.uniform(*AM_DEPTH, n).astype(np.float32)
    s = np.where(carrier[:, None], 1 + depth[:, None] * m, m).astype(np.complex64)
    return s, {"am_carrier": carrier, "am_depth": np.where(carrier, depth, np.nan), "bandwidth": 2 * bw}


def am_ssb(rng: np.random.Generator, n: int, length: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    m, bw = message(rng, n, length)
    s = signal.hilbert(m, axis=-1).astype(np.complex64)
    lower = rng.random(n) < 0.5
    s[lower] = np.conj(s[lower])
    pilot = np.where(rng.random(n) < SSB_PILOT_SHARE, rng.uniform(0.05, 0.3, n), 0.0)
    s += pilot[:, None].astype(np.complex64)
    return s, {"ssb_lower": lower, "bandwidth": bw}


def wbfm(rng: np.random.Generator, n: int, length: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    m, bw = message(rng, n, length)
    m /= np.max(np.abs(m), axis=-1, keepdims=True)
    deviation = rng.uniform(*FM_DEVIATION, n)
    s = dsp.continuous_phase(deviation[:, None].astype(np.float32) * m, rng.uniform(-np.pi, np.pi, n))
    return s, {"fm_deviation": deviation, "bandwidth": 2 * (deviation + bw)}


BASEBAND: dict[str, Baseband] = {
    "8PSK": linear("8PSK"),
    "AM-DSB": am_dsb,
    "AM-SSB": am_ssb,
    "BPSK": linear("BPSK"),
    "CPFSK": fsk(gaussian=False),
    "GFSK": fsk(gaussian=True),
    "PAM4": linear("PAM4"),
    "QAM16": linear("QAM16"),
    "QAM64": linear("QAM64"),
    "QPSK": linear("QPSK"),
    "WBFM": wbfm,
}
META_KEYS = ("sps", "pulse", "rolloff", "fsk_index", "fsk_bt", "fsk_levels", "am_carrier", "am_depth",
             "ssb_lower", "fm_deviation", "bandwidth")


def baseband_by_label(rng: np.random.Generator, y: np.ndarray, length: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Baseband [n, length] for label vector y over CLASSES (one batch per class), not normalised, and
    per-frame waveform parameters (NaN, or -1 for integer ones, where a class has no such parameter)."""
    s = np.empty((len(y), length), np.complex64)
    meta = {key: np.full(len(y), np.nan, np.float32) for key in META_KEYS}
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        s[rows], params = BASEBAND[CLASSES[label]](rng, len(rows), length)
        for key, value in params.items():
            meta[key][rows] = value
    return s, meta


def frames(
    rng: np.random.Generator, y: np.ndarray, snr: np.ndarray, length: int, impairments: bool, clean: bool
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    s, meta = baseband_by_label(rng, y, length + channel.PAD)
    x, chain = channel.single_antenna(rng, s, length, meta["bandwidth"], impairments)
    meta |= chain
    x = dsp.observe(rng, x[:, None, :], snr, clean, meta)
    return (channel.adc(rng, x, meta) if impairments else x), y, meta
