"""Pulse shaping at any (non-integer) symbol rate, vectorised over frames with per-frame pulses.

A bank of pulse shapes is tabulated once on a fine grid (RES points per symbol over SPAN symbols);
`shape` then builds each frame as sum_m a[m] p(t_k - m) with t_k = k / sps + t0, looking the pulse up
in the frame's own table row. One pass of SPAN gathers serves every pulse kind, roll-off and rate in a
batch, so a chunk of frames with 500 different (pulse, rate) pairs costs what one pair costs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import erf

SPAN = 6  # symbols a pulse reaches (+-3): truncated as real transmit filters are
RES = 32  # table points per symbol
ROLLOFFS = np.round(np.arange(0.10, 0.501, 0.05), 2)  # RRC and RC roll-off levels
GAUSS_BT = np.round(np.arange(0.25, 1.01, 0.125), 3)  # Gaussian bandwidth-time levels
KINDS = ("rrc", "rc", "rect", "gauss")


def _t() -> np.ndarray:
    return (np.arange(SPAN * RES + 1) - SPAN * RES / 2) / RES


def raised_cosine(t: np.ndarray, beta: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        h = np.sinc(t) * np.cos(np.pi * beta * t) / (1 - (2 * beta * t) ** 2)
    edge = np.isclose(np.abs(t), 1 / (2 * beta))
    h[edge] = np.pi / 4 * np.sinc(1 / (2 * beta))
    return h


def root_raised_cosine(t: np.ndarray, beta: float) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        h = (np.sin(np.pi * t * (1 - beta)) + 4 * beta * t * np.cos(np.pi * t * (1 + beta))) / (
            np.pi * t * (1 - (4 * beta * t) ** 2)
        )
    h[np.isclose(t, 0)] = 1 - beta + 4 * beta / np.pi
    edge = np.isclose(np.abs(t), 1 / (4 * beta))
    h[edge] = beta / np.sqrt(2) * ((1 + 2 / np.pi) * np.sin(np.pi / (4 * beta)) + (1 - 2 / np.pi) * np.cos(np.pi / (4 * beta)))
    return h


def gaussian(t: np.ndarray, bt: float) -> np.ndarray:
    sigma = np.sqrt(np.log(2)) / (2 * np.pi * bt)  # in symbols
    return np.exp(-(t**2) / (2 * sigma**2))


def gaussian_rect(t: np.ndarray, bt: float) -> np.ndarray:
    """A one-symbol rectangle smoothed by a Gaussian of bandwidth-time bt (the GFSK frequency pulse)."""
    sigma = np.sqrt(np.log(2)) / (2 * np.pi * bt)
    s = np.sqrt(2) * sigma
    return 0.5 * (erf((t + 0.5) / s) - erf((t - 0.5) / s))


def rect(t: np.ndarray) -> np.ndarray:
    return ((t > -0.5) & (t <= 0.5)).astype(np.float64)


@dataclass(frozen=True)
class PulseBank:
    """Tabulated pulses; `rows(kind, value)` finds the row of each (kind, level) pair."""

    by_tap: np.ndarray  # [rows, SPAN, RES+1]: weight of window symbol i (m-SPAN/2+1+i) at f/RES past m
    kind: np.ndarray  # per row: index into KINDS
    value: np.ndarray  # per row: roll-off, BT, or nan

    def rows(self, kind: np.ndarray, value: np.ndarray) -> np.ndarray:
        """Nearest tabulated row for per-frame kinds (indices into KINDS) and values."""
        cost = (self.kind[None, :] != kind[:, None]) * 1e9 + np.abs(np.nan_to_num(self.value)[None, :] - value[:, None])
        return np.argmin(cost, axis=1)


def _bank(frequency_pulses: bool) -> PulseBank:
    t = _t()
    rows, kinds, values = [], [], []
    if frequency_pulses:  # FSK: rectangular (CPFSK) or Gaussian-smoothed (GFSK) frequency pulses
        rows.append(rect(t)); kinds.append(KINDS.index("rect")); values.append(np.nan)  # noqa: E702
        for bt in GAUSS_BT:
            rows.append(gaussian_rect(t, bt)); kinds.append(KINDS.index("gauss")); values.append(bt)  # noqa: E702
    else:
        for beta in ROLLOFFS:
            rows.append(root_raised_cosine(t, beta)); kinds.append(0); values.append(beta)  # noqa: E702
            rows.append(raised_cosine(t, beta)); kinds.append(1); values.append(beta)  # noqa: E702
        rows.append(rect(t)); kinds.append(2); values.append(np.nan)  # noqa: E702
        for bt in GAUSS_BT:
            rows.append(gaussian(t, bt)); kinds.append(3); values.append(bt)  # noqa: E702
    table = np.asarray(rows, np.float32)  # [rows, SPAN*RES+1], pulse at t = -SPAN/2 .. SPAN/2
    index = (SPAN - 1 - np.arange(SPAN))[:, None] * RES + np.arange(RES + 1)[None, :]
    return PulseBank(np.ascontiguousarray(table[:, index]), np.asarray(kinds), np.asarray(values, np.float64))


SYMBOL_PULSES = _bank(frequency_pulses=False)
FREQUENCY_PULSES = _bank(frequency_pulses=True)


def symbols_needed(length: int, sps: np.ndarray) -> int:
    """Symbols per frame that `shape` reads for `length` samples at rates sps (>= 1)."""
    return int(np.ceil((length - 1) / np.min(sps))) + SPAN + 2


BLOCK = 64  # frames per pass: the working arrays stay in cache (2-3x faster than a 512-frame pass)


def shape(symbols: np.ndarray, bank: PulseBank, rows: np.ndarray, sps: np.ndarray, t0: np.ndarray,
          length: int) -> np.ndarray:
    """Frames [n, length]: y[k] = sum_m symbols[m] * p_row(t_k - m), t_k = k / sps + t0 + SPAN/2 - 1.

    symbols [n, M] (M >= symbols_needed), rows/sps/t0 [n]: per-frame table row, samples per symbol
    (any real >= 1) and symbol timing in [0, 1)."""
    n, m_total = symbols.shape
    t = np.arange(length, dtype=np.float32)[None, :] / sps[:, None].astype(np.float32)
    t += t0[:, None].astype(np.float32)
    start = t.astype(np.intp)  # first symbol of the sample's window, m - SPAN/2 + 1 (t >= 0: floor)
    if start.max(initial=0) + SPAN > m_total:
        raise ValueError(f"shape needs {start.max() + SPAN} symbols per frame, got {m_total}")
    frac = np.rint((t - start) * RES).astype(np.intp)  # 0..RES
    table = bank.by_tap.ravel()
    y = np.zeros((n, length), np.result_type(symbols.dtype, np.float32))
    for a in range(0, n, BLOCK):
        rows_ = slice(a, a + BLOCK)
        m = len(y[rows_])
        symbol_index = start[rows_] + (np.arange(m, dtype=np.intp) * m_total)[:, None]
        tap_index = frac[rows_] + (rows[rows_].astype(np.intp) * bank.by_tap[0].size)[:, None]
        flat = symbols[rows_].ravel()
        value, tap = np.empty((m, length), y.dtype), np.empty((m, length), np.float32)
        for _ in range(SPAN):
            np.take(flat, symbol_index, out=value)
            np.take(table, tap_index, out=tap)
            value *= tap
            y[rows_] += value
            symbol_index += 1
            tap_index += RES + 1
    return y
