"""`beam` and `los`: a 16-element half-wavelength ULA receiving a pilot through a clustered channel.

Channel (3GPP-style, NLoS-dominated, every parameter drawn per frame; ranges in xapp/data/CARD.md):
an optional line-of-sight path plus 2..16 clusters of 10 rays. Cluster directions spread around a
mean direction (uniform in sin theta) with an angular spread of 5..60 degrees, rays inside a cluster
with 2..15 degrees; cluster powers decay with delay and carry 3 dB log-normal shadowing; delays 0..7
samples. Element patterns cos(theta)^p with p 0..1.5, per-element gain and phase calibration errors,
a random pilot (Zadoff-Chu with a random root and shift, random QPSK or 8PSK, or Gaussian, OFDM-like)
and per-antenna noise levels. The beam label is the best of the 16 DFT beams on the noiseless frame.
"""

from __future__ import annotations

import numpy as np

from . import dsp

ANTENNAS = 16
BEAMS = tuple(f"beam{b:02d}" for b in range(ANTENNAS))
LOS_CLASSES = ("LOS", "NLOS")
SNR_DB = (-10.0, 20.0)  # mean over antennas
CLUSTERS, RAYS, DELAYS = (2, 16), 10, 8
LOS_PROBABILITY = 0.25  # beam task: share of frames with a line of sight
K_DB = (-5.0, 12.0)  # Rician K of line-of-sight frames
MEAN_SPREAD_DEG, RAY_SPREAD_DEG = (5.0, 60.0), (2.0, 15.0)
DELAY_DECAY = (0.5, 4.0)  # samples: cluster power ~ exp(-delay / decay) * shadowing
SHADOWING_DB = 3.0
PATTERN_EXPONENT = (0.0, 1.5)
GAIN_ERROR, PHASE_ERROR_DEG = (0.0, 0.1), (0.0, 10.0)  # per-frame std of the per-element errors
ANTENNA_SNR_SPREAD_DB = 2.0  # per-antenna noise level within +-this of the frame's
PILOTS = ("zadoff_chu", "qpsk", "8psk", "gaussian")
MAX_CFO = 0.01


def steering(u: np.ndarray) -> np.ndarray:
    """ULA response for direction sines u [...]: [..., ANTENNAS], element spacing half a wavelength."""
    return np.exp(1j * np.pi * u[..., None] * np.arange(ANTENNAS)).astype(np.complex64)


def beam_energy(y: np.ndarray) -> np.ndarray:
    """Energy [n, 16] of each DFT beam over the frame; beam b points at u = (b - 8) / 8."""
    return np.sum(np.abs(np.fft.fftshift(np.fft.fft(y, axis=1), axes=1)) ** 2, axis=2)


def pilots(rng: np.random.Generator, m: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Random pilots [m, length + DELAYS - 1] (the first DELAYS - 1 samples precede the frame) and
    their kinds (indices into PILOTS)."""
    total = length + DELAYS - 1
    kind = rng.integers(0, len(PILOTS), m)
    k = np.arange(total)[None, :]
    root = 2 * rng.integers(0, total // 2, m)[:, None] + 1  # odd roots: a ZC sequence for any length
    shift = rng.integers(0, total, m)[:, None]
    zc = np.exp(-1j * np.pi * root * ((k + shift) % total) * ((k + shift) % total + total % 2) / total)
    psk = np.exp(2j * np.pi * rng.integers(0, 8, (m, total)) / np.where(kind == 1, 4, 8)[:, None])
    gauss = dsp.complex_normal(rng, (m, total))
    x = np.select([kind[:, None] == 0, kind[:, None] == 3], [zc, gauss], psk)
    return x.astype(np.complex64), kind


def channel(
    rng: np.random.Generator, los: np.ndarray, length: int, impairments: bool
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Noiseless received pilot [m, 16, length], unit power, and per-frame parameters."""
    m = len(los)
    k_db = rng.uniform(*K_DB, m)
    k_lin = np.where(los, 10 ** (k_db / 10), 0.0)
    clusters = rng.integers(CLUSTERS[0], CLUSTERS[1] + 1, m)
    active = np.arange(CLUSTERS[1])[None, :] < clusters[:, None]
    # mean direction uniform in sine space, so every DFT beam is equally likely
    u_mean = rng.uniform(-1, 1, m)
    u_los = np.clip(u_mean + rng.normal(0, 0.05, m), -1, 1)
    spread = np.deg2rad(rng.uniform(*MEAN_SPREAD_DEG, (m, 1)))
    theta_cluster = np.arcsin(u_mean)[:, None] + spread * rng.standard_normal((m, CLUSTERS[1]))
    delay_cluster = rng.integers(0, DELAYS, (m, CLUSTERS[1]))
    decay = rng.uniform(*DELAY_DECAY, (m, 1))
    shadowing = 10 ** (rng.normal(0, SHADOWING_DB, (m, CLUSTERS[1])) / 10)
    cluster_power = np.exp(-delay_cluster / decay) * shadowing * active
    cluster_power /= cluster_power.sum(axis=1, keepdims=True)
    cluster_power *= (1 / (k_lin + 1))[:, None]
    ray_spread = np.deg2rad(rng.uniform(*RAY_SPREAD_DEG, (m, 1, 1)))
    theta = theta_cluster[:, :, None] + ray_spread * rng.laplace(0, 1 / np.sqrt(2), (m, CLUSTERS[1], RAYS))
    u_rays = np.sin(theta)  # directions behind the array fold onto the front, as a ULA sees them
    g_rays = dsp.complex_normal(rng, (m, CLUSTERS[1], RAYS)) * np.sqrt(cluster_power / RAYS)[:, :, None]

    u = np.concatenate([u_los[:, None], u_rays.reshape(m, -1)], axis=1)
    g = np.concatenate(
        [(np.sqrt(k_lin / (k_lin + 1)) * np.exp(2j * np.pi * rng.random(m)))[:, None], g_rays.reshape(m, -1)], axis=1
    )
    pattern = rng.uniform(*PATTERN_EXPONENT, (m, 1))
    g = (g * np.sqrt(1 - u**2) ** pattern).astype(np.complex64)  # element gain cos(theta)^p
    delay = np.concatenate([np.zeros((m, 1), np.intp), np.repeat(delay_cluster, RAYS, axis=1)], axis=1)
    by_delay = (delay[:, :, None] == np.arange(DELAYS)) * g[:, :, None]  # [m, paths, delays]
    h = np.einsum("mpd,mpa->mad", by_delay, steering(u))  # [m, antennas, delays]
    gain_error = rng.uniform(*GAIN_ERROR, (m, 1)) * rng.standard_normal((m, ANTENNAS))
    phase_error = np.deg2rad(rng.uniform(*PHASE_ERROR_DEG, (m, 1))) * rng.standard_normal((m, ANTENNAS))
    h *= ((1 + gain_error) * np.exp(1j * phase_error)).astype(np.complex64)[:, :, None]
    x, kind = pilots(rng, m, length)
    y = np.zeros((m, ANTENNAS, length), np.complex64)
    for d in range(DELAYS):
        y += h[:, :, d : d + 1] * x[:, None, DELAYS - 1 - d : DELAYS - 1 - d + length]
    y = dsp.unit_power(y)
    meta = {
        "u_los": np.where(los, u_los, np.nan).astype(np.float32),
        "rician_k_db": np.where(los, k_db, np.nan).astype(np.float32),
        "clusters": clusters.astype(np.int64),
        "angular_spread_deg": np.rad2deg(spread[:, 0]).astype(np.float32),
        "pattern_exponent": pattern[:, 0].astype(np.float32),
        "pilot": kind.astype(np.int64),
    }
    if impairments:
        cfo = rng.uniform(-MAX_CFO, MAX_CFO, m)
        y *= dsp.oscillator(rng, m, length, cfo, np.zeros(m))[:, None, :]
        meta["cfo"] = cfo.astype(np.float32)
    return y, meta


def observe(rng: np.random.Generator, y_clean: np.ndarray, snr: np.ndarray, clean: bool,
            meta: dict[str, np.ndarray]) -> np.ndarray:
    """Noisy frames at per-antenna noise levels spread around the frame's SNR (their mean power is
    the frame's noise power, so the frame SNR stays `snr`)."""
    m = len(y_clean)
    level = 10 ** (rng.uniform(-ANTENNA_SNR_SPREAD_DB, ANTENNA_SNR_SPREAD_DB, (m, ANTENNAS, 1)) / 10)
    level /= level.mean(axis=1, keepdims=True)
    noise = dsp.complex_normal(rng, y_clean.shape) * np.sqrt(level * 10 ** (-snr[:, None, None] / 10)).astype(np.float32)
    noisy = y_clean + noise
    scale = (1 / np.sqrt(dsp.power(noisy))).astype(np.float32)
    if clean:
        meta["clean"] = y_clean * scale
    return noisy * scale


def beam_frames(
    rng: np.random.Generator, y: np.ndarray, snr: np.ndarray, length: int, impairments: bool, clean: bool
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """The label comes from the channel (best beam of the noiseless frame); the drawn y is ignored."""
    y_clean, meta = channel(rng, rng.random(len(y)) < LOS_PROBABILITY, length, impairments)
    best = np.argmax(beam_energy(y_clean), axis=1).astype(np.int64)
    return observe(rng, y_clean, snr, clean, meta), best, meta


def los_frames(
    rng: np.random.Generator, y: np.ndarray, snr: np.ndarray, length: int, impairments: bool, clean: bool
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    y_clean, meta = channel(rng, y == LOS_CLASSES.index("LOS"), length, impairments)
    meta["best_beam"] = np.argmax(beam_energy(y_clean), axis=1).astype(np.int64)
    return observe(rng, y_clean, snr, clean, meta), y, meta
