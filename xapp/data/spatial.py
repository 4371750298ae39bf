"""`beam` and `los`: a 16-element half-wavelength ULA receiving a pilot through a geometric channel.

Channel: an optional line-of-sight path (Rician K 0..15 dB) plus 1..4 clusters of 8 rays (Laplacian
angular spread 2..8 degrees, exponential cluster powers, integer delays 0..3 samples). The pilot is a
fixed Zadoff-Chu sequence, so paths at different delays are orthogonal over the frame.
"""

from __future__ import annotations

import numpy as np

from . import dsp

ANTENNAS = 16
BEAMS = tuple(f"beam{b:02d}" for b in range(ANTENNAS))
LOS_CLASSES = ("LOS", "NLOS")
SNR_DB = (-10.0, 20.0)  # per antenna
MAX_CLUSTERS, RAYS, DELAYS = 4, 8, 4
LOS_PROBABILITY = 0.6  # beam task: share of frames with a line of sight


def pilot(length: int) -> np.ndarray:
    """Zadoff-Chu (root 5, coprime to every multiple-of-16 length here): constant envelope, zero
    cyclic autocorrelation at non-zero lags."""
    k = np.arange(length)
    return np.exp(-1j * np.pi * 5 * k * (k + length % 2) / length).astype(np.complex64)


def steering(u: np.ndarray) -> np.ndarray:
    """ULA response for direction sines u [...]: [..., ANTENNAS], element spacing half a wavelength."""
    return np.exp(1j * np.pi * u[..., None] * np.arange(ANTENNAS)).astype(np.complex64)


def beam_energy(y: np.ndarray) -> np.ndarray:
    """Energy [n, 16] of each DFT beam over the frame; beam b points at u = (b - 8) / 8."""
    return np.sum(np.abs(np.fft.fftshift(np.fft.fft(y, axis=1), axes=1)) ** 2, axis=2)


def channel(
    rng: np.random.Generator, los: np.ndarray, length: int, impairments: bool
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Noiseless received pilot [m, 16, length], unit power, and per-frame parameters."""
    m = len(los)
    k_db = rng.uniform(0.0, 15.0, m)
    k_lin = np.where(los, 10 ** (k_db / 10), 0.0)
    clusters = rng.integers(1, MAX_CLUSTERS + 1, m)
    # LOS direction and cluster centres: uniform in sine space, so every DFT beam is equally likely
    u_los = rng.uniform(-1, 1, m)
    u_cluster = rng.uniform(-1, 1, (m, MAX_CLUSTERS))
    cluster_power = rng.exponential(1.0, (m, MAX_CLUSTERS)) * (np.arange(MAX_CLUSTERS) < clusters[:, None])
    cluster_power /= cluster_power.sum(axis=1, keepdims=True)
    cluster_power *= (1 / (k_lin + 1))[:, None]
    spread = np.deg2rad(rng.uniform(2.0, 8.0, (m, 1, 1)))
    theta = np.arcsin(u_cluster)[:, :, None] + spread * rng.laplace(0, 1 / np.sqrt(2), (m, MAX_CLUSTERS, RAYS))
    u_rays = np.sin(theta)
    g_rays = dsp.complex_normal(rng, (m, MAX_CLUSTERS, RAYS)) * np.sqrt(cluster_power / RAYS)[:, :, None]
    delay_cluster = rng.integers(0, DELAYS, (m, MAX_CLUSTERS))

    u = np.concatenate([u_los[:, None], u_rays.reshape(m, -1)], axis=1)
    g = np.concatenate(
        [(np.sqrt(k_lin / (k_lin + 1)) * np.exp(2j * np.pi * rng.random(m)))[:, None], g_rays.reshape(m, -1)], axis=1
    ).astype(np.complex64)
    delay = np.concatenate([np.zeros((m, 1), np.intp), np.repeat(delay_cluster, RAYS, axis=1)], axis=1)
    by_delay = (delay[:, :, None] == np.arange(DELAYS)) * g[:, :, None]  # [m, paths, delays]
    h = np.einsum("mpd,mpa->mad", by_delay, steering(u))  # [m, antennas, delays]
    y = h[:, :, :1] * pilot(length)
    for d in range(1, DELAYS):
        y += h[:, :, d : d + 1] * np.roll(pilot(length), d)
    y = dsp.unit_power(y)
    meta = {
        "u_los": np.where(los, u_los, np.nan).astype(np.float32),
        "rician_k_db": np.where(los, k_db, np.nan).astype(np.float32),
        "clusters": clusters.astype(np.int64),
    }
    if impairments:
        cfo = rng.uniform(-dsp.MAX_CFO, dsp.MAX_CFO, m)
        y *= dsp.oscillator(rng, m, length, cfo, np.zeros(m))[:, None, :]
        meta["cfo"] = cfo.astype(np.float32)
    return y, meta


def beam_frames(
    rng: np.random.Generator, y: np.ndarray, snr: np.ndarray, length: int, impairments: bool, clean: bool
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The label comes from the channel (best beam of the noiseless frame); the drawn y is ignored."""
    y_clean, meta = channel(rng, rng.random(len(y)) < LOS_PROBABILITY, length, impairments)
    best = np.argmax(beam_energy(y_clean), axis=1).astype(np.int64)
    return dsp.observe(rng, y_clean, snr, clean, meta), best, meta


def los_frames(
    rng: np.random.Generator, y: np.ndarray, snr: np.ndarray, length: int, impairments: bool, clean: bool
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    y_clean, meta = channel(rng, y == LOS_CLASSES.index("LOS"), length, impairments)
    meta["best_beam"] = np.argmax(beam_energy(y_clean), axis=1).astype(np.int64)
    return dsp.observe(rng, y_clean, snr, clean, meta), y, meta
