"""Hand features for the classical baselines. Single-antenna frames (modulation, interference,
fingerprint): higher-order cumulants, spectral lines of x^2/x^4/x^8, instantaneous amplitude/frequency
statistics, occupied bandwidth, spectral flatness and peakiness, and short-time (burst, hop, sweep)
statistics. Array frames (los) read the `spatial` side features (xapp.model.side), named here."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter1d

from xapp.model.side import STFT_SIZE

NAMES = (
    "|C20|", "|C40|", "|C41|", "|C42|", "|C60|", "|C63|",
    "line x", "line x^2", "line x^4", "line x^8",
    "amp std", "amp kurtosis", "amp spectrum peak", "freq std", "freq kurtosis", "freq diff std", "phase-diff |mean|",
    "bandwidth 99%", "bandwidth -10dB", "spectral flatness", "spectral peakiness",
    "short-time power std", "short-time power max/min", "peak-bin track std", "peak-bin energy share",
    "peak-bin jumps", "band occupancy std",
)


def _log(v: np.ndarray) -> np.ndarray:
    return np.log10(np.maximum(v, 1e-12))


def _kurtosis(v: np.ndarray) -> np.ndarray:
    c = v - v.mean(axis=1, keepdims=True)
    return np.mean(c**4, axis=1) / np.maximum(np.mean(c**2, axis=1) ** 2, 1e-12)


def cumulants(x: np.ndarray) -> np.ndarray:
    """|C20|, |C40|, |C41|, |C42|, |C60|, |C63| of unit-power frames x [N, S] (zero-mean formulas)."""
    m = lambda p, q: np.mean(x ** (p - q) * np.conj(x) ** q, axis=1)  # noqa: E731  M_pq
    m20, m21, m40, m41, m42 = m(2, 0), m(2, 1), m(4, 0), m(4, 1), m(4, 2)
    m60, m63 = m(6, 0), m(6, 3)
    c40 = m40 - 3 * m20**2
    c41 = m41 - 3 * m20 * m21
    c42 = m42 - np.abs(m20) ** 2 - 2 * m21**2
    c60 = m60 - 15 * m40 * m20 + 30 * m20**3
    c63 = m63 - 6 * m41 * np.conj(m20) - 9 * m42 * m21 + 18 * np.abs(m20) ** 2 * m21 + 12 * m21**3
    return np.abs(np.stack([m20, c40, c41, c42, c60, c63], axis=1))


def spectral_line(x: np.ndarray) -> np.ndarray:
    """Strongest bin of |FFT|^2 against the mean bin: a carrier or symbol-rate line stands out."""
    p = np.abs(np.fft.fft(x, axis=1)) ** 2
    return _log(p.max(axis=1) / p.mean(axis=1))


def features(x: np.ndarray) -> np.ndarray:
    """[N, len(NAMES)] float32 features of frames x complex [N, 1, S] (or [N, S])."""
    x = x.reshape(len(x), -1).astype(np.complex128)
    n, s = x.shape
    out = [_log(cumulants(x))]
    out.append(np.stack([spectral_line(x**k) for k in (1, 2, 4, 8)], axis=1))
    amp = np.abs(x)
    amp_c = amp / np.maximum(amp.mean(axis=1, keepdims=True), 1e-12) - 1
    freq = np.angle(x[:, 1:] * np.conj(x[:, :-1])) / (2 * np.pi)
    out.append(np.stack([
        amp_c.std(axis=1), _log(_kurtosis(amp)), spectral_line(amp_c),
        freq.std(axis=1), _log(_kurtosis(freq)), np.diff(freq, axis=1).std(axis=1),
        np.abs(np.mean(np.exp(2j * np.pi * freq), axis=1)),
    ], axis=1))

    psd = np.abs(np.fft.fft(x, axis=1)) ** 2
    smooth = uniform_filter1d(psd, 9, axis=1, mode="wrap")
    ordered = np.sort(psd, axis=1)[:, ::-1]
    bw99 = np.argmax(np.cumsum(ordered, axis=1) >= 0.99 * psd.sum(axis=1, keepdims=True), axis=1) / s
    bw10 = np.mean(smooth > 0.1 * smooth.max(axis=1, keepdims=True), axis=1)
    flatness = np.exp(np.mean(np.log(smooth + 1e-12), axis=1)) / smooth.mean(axis=1)
    out.append(np.stack([bw99, bw10, flatness, _log(smooth.max(axis=1) / smooth.mean(axis=1))], axis=1))

    frames = s // STFT_SIZE
    stft = np.abs(np.fft.fft(x[:, : frames * STFT_SIZE].reshape(n, frames, STFT_SIZE), axis=2)) ** 2
    power = stft.sum(axis=2)
    peak = stft.argmax(axis=2)
    share = stft.max(axis=2) / np.maximum(power, 1e-12)
    occupied = np.mean(stft > 0.1 * stft.max(axis=2, keepdims=True), axis=2)
    out.append(np.stack([
        power.std(axis=1) / power.mean(axis=1), _log(power.max(axis=1) / np.maximum(power.min(axis=1), 1e-12)),
        np.std(np.unwrap(peak * 2 * np.pi / STFT_SIZE, axis=1), axis=1), share.mean(axis=1),
        np.mean(np.diff(peak, axis=1) != 0, axis=1), occupied.std(axis=1),
    ], axis=1))
    return np.concatenate(out, axis=1).astype(np.float32)


SPATIAL_NAMES = (
    *(f"log eigenvalue {i + 1}" for i in range(16)),
    *(f"|coherence| lag {lag}" for lag in range(1, 16)),
    *(f"log beam energy, rank {i + 1}" for i in range(16)),
)
