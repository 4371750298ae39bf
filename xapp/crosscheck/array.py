"""The cross-check's `beam` frames: a 16-element half-wavelength ULA behind a 3GPP-style clustered
channel (cluster powers from delays with log-normal shadowing, 20 rays per cluster at the fixed
TR 38.901 offsets scaled by a per-cluster spread, an element pattern), receiving a pilot that is
drawn per frame. The label is the contract's: the best of the 16 DFT beams on the noiseless frame,
beam b steering to sin(theta) = (b - 8) / 8, element n at phase exp(j*pi*n*sin(theta))."""

from __future__ import annotations

import numpy as np

ANTENNAS = 16
RAY_OFFSETS = np.array([0.0447, 0.1413, 0.2492, 0.3715, 0.5129, 0.6797, 0.8844, 1.1481, 1.5195, 2.1551])
RAY_OFFSETS = np.r_[RAY_OFFSETS, -RAY_OFFSETS]  # TR 38.901 Table 7.5-3, in units of the cluster spread
CLUSTERS = (3, 12)
CLUSTER_SPREAD_DEG = (2.0, 20.0)
LOS_PROBABILITY = 0.35
LOS_K_DB = (-3.0, 12.0)
DELAY_SPREAD = (0.3, 3.0)  # samples
DOPPLER = 0.004  # max cycles/sample per ray
CFO = 0.01


def steering(sin_theta: np.ndarray) -> np.ndarray:
    """[..., ANTENNAS] array response; element n has phase exp(j*pi*n*sin(theta))."""
    return np.exp(1j * np.pi * np.multiply.outer(sin_theta, np.arange(ANTENNAS)))


CODEBOOK = steering((np.arange(ANTENNAS) - 8) / 8) / np.sqrt(ANTENNAS)  # row b steers to (b - 8) / 8


def best_beam(frame: np.ndarray) -> int:
    """Index of the DFT beam with the most energy over the frame [ANTENNAS, samples]."""
    return int(np.argmax(np.sum(np.abs(CODEBOOK.conj() @ frame) ** 2, axis=1)))


def element_gain(theta_deg: np.ndarray) -> np.ndarray:
    """Amplitude of a 3GPP-like element pattern (-min(12 (theta/65)^2, 30) dB), pattern drawn on or off."""
    return 10 ** (-np.minimum(12 * (theta_deg / 65) ** 2, 30) / 20)


def pilot(rng: np.random.Generator, length: int) -> np.ndarray:
    """Random QPSK, a random-root Zadoff-Chu sequence or a random linear chirp, unit power."""
    k = np.arange(length)
    kind = rng.integers(3)
    if kind == 0:
        return np.exp(1j * np.pi / 4 * (2 * rng.integers(4, size=length) + 1))
    if kind == 1:
        root = int(rng.choice([r for r in range(1, length) if np.gcd(r, length) == 1]))
        return np.exp(-1j * np.pi * root * k * k / length)
    return np.exp(1j * np.pi * rng.uniform(0.2, 1) * k * k / length + 1j * rng.uniform(0, 2 * np.pi))


def cyclic_delay(signal: np.ndarray, delay: float) -> np.ndarray:
    """Fractional cyclic delay through a linear phase in frequency."""
    return np.fft.ifft(np.fft.fft(signal) * np.exp(-2j * np.pi * np.fft.fftfreq(len(signal)) * delay))


def noiseless_frame(rng: np.random.Generator, length: int) -> tuple[np.ndarray, bool]:
    """[ANTENNAS, length] received pilot without noise, and whether a line of sight was drawn."""
    s = pilot(rng, length)
    t = np.arange(length)
    clusters = int(rng.integers(CLUSTERS[0], CLUSTERS[1] + 1))
    spread = rng.uniform(*DELAY_SPREAD)
    delays = np.sort(rng.exponential(spread, clusters))
    delays -= delays[0]
    powers = np.exp(-delays / spread) * 10 ** (-rng.normal(0, 3, clusters) / 10)
    powers /= powers.sum()
    centres = rng.uniform(-80, 80, clusters)
    pattern = rng.random() < 0.5
    frame = np.zeros((ANTENNAS, length), complex)
    for delay, power, centre in zip(delays, powers, centres):
        angles = centre + rng.uniform(*CLUSTER_SPREAD_DEG) * rng.permutation(RAY_OFFSETS)
        angles = (angles + 90) % 180 - 90
        gains = np.sqrt(power / len(angles)) * np.exp(1j * rng.uniform(0, 2 * np.pi, len(angles)))
        if pattern:
            gains = gains * element_gain(angles)
        doppler = np.exp(2j * np.pi * np.outer(rng.uniform(-DOPPLER, DOPPLER, len(angles)), t))
        arrivals = (steering(np.sin(np.deg2rad(angles))).T * gains) @ doppler  # [ANTENNAS, length]
        frame += arrivals * cyclic_delay(s, delay)
    los = bool(rng.random() < LOS_PROBABILITY)
    if los:
        k = 10 ** (rng.uniform(*LOS_K_DB) / 10)
        angle = rng.uniform(-80, 80)
        direct = steering(np.sin(np.deg2rad(angle)))[:, None] * s * np.exp(1j * rng.uniform(0, 2 * np.pi))
        scale = np.sqrt(np.mean(np.abs(frame) ** 2))
        frame = (frame + np.sqrt(k) * scale * direct) / np.sqrt(1 + k)
    return frame * np.exp(2j * np.pi * rng.uniform(-CFO, CFO) * t), los
