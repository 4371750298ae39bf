"""`fingerprint`: which of 8 transmitters sent a frame, told apart only by their hardware.

Every emitter sends the same waveform (QPSK, RRC, 8 samples/symbol, random data); what differs is
a fixed set of impairments drawn once from a constant seed (independent of the dataset seed): IQ gain
and phase imbalance, DC offset (LO leakage), oscillator phase noise and a PA with AM/AM (Rapp) and
AM/PM distortion. The channel (timing, clock and carrier offset, multipath) and the SNR are drawn per
frame, so they carry no information about the emitter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import dsp, modulation

SPS = 8  # every emitter sends the same waveform: QPSK, RRC roll-off 0.35, 8 samples per symbol
_RRC = dsp.rrc_taps(SPS)

EMITTERS = 8
CLASSES = tuple(f"emitter{i}" for i in range(EMITTERS))
SNR_DB = (5.0, 30.0)
CHANNEL_K_DB = (3.0, 15.0)  # short-range links: Rician fading with a line of sight
HARDWARE_SEED = 0x5EED_F1A6  # fixed: the emitters are the same devices in every dataset


@dataclass(frozen=True)
class Hardware:
    iq_gain: np.ndarray  # amplitude imbalance epsilon: I scaled by 1+eps, Q by 1-eps
    iq_phase: np.ndarray  # quadrature skew, rad
    dc: np.ndarray  # complex DC offset relative to unit signal power
    phase_noise: np.ndarray  # Wiener step std, rad/sample
    saturation: np.ndarray  # Rapp PA output saturation amplitude relative to signal RMS
    smoothness: np.ndarray  # Rapp p
    am_pm: np.ndarray  # AM/PM peak phase shift at saturation, rad


def _emitters() -> Hardware:
    """Each parameter takes 8 evenly spaced levels, shuffled across emitters by the fixed seed, so no
    two emitters share a value of any impairment."""
    rng = np.random.default_rng(HARDWARE_SEED)

    def levels(low: float, high: float) -> np.ndarray:
        return rng.permutation(np.linspace(low, high, EMITTERS))

    return Hardware(
        iq_gain=levels(-0.12, 0.12),
        iq_phase=np.deg2rad(levels(-8.0, 8.0)),
        dc=levels(0.03, 0.15) * np.exp(2j * np.pi * rng.random(EMITTERS)),
        phase_noise=levels(1e-3, 1.5e-2),
        saturation=levels(1.0, 2.0),
        smoothness=levels(1.5, 4.0),
        am_pm=levels(0.02, 0.3),
    )


HARDWARE = _emitters()


def transmit(s: np.ndarray, e: np.ndarray, hw: Hardware, rng: np.random.Generator) -> np.ndarray:
    """Pass unit-power baseband s [m, L] through emitters e [m] (indices into hw)."""
    f32 = lambda v: v[e, None].astype(np.float32)  # noqa: E731
    eps, phi = f32(hw.iq_gain), f32(hw.iq_phase)
    i, q = s.real, s.imag
    x = np.empty_like(s)
    x.real = (1 + eps) * i
    x.imag = (1 - eps) * (q * np.cos(phi) + i * np.sin(phi))
    x += hw.dc[e, None].astype(np.complex64)
    x *= dsp.oscillator(rng, len(e), s.shape[1], np.zeros(len(e)), hw.phase_noise[e])
    drive = np.abs(x) / f32(hw.saturation)
    p = f32(hw.smoothness)
    gain = (1 + drive ** (2 * p)) ** (-1 / (2 * p))  # Rapp AM/AM
    shift = f32(hw.am_pm) * drive**2 / (1 + drive**2)  # Saleh-style AM/PM
    return x * gain * dsp.expj(shift)


def frames(
    rng: np.random.Generator,
    y: np.ndarray,
    snr: np.ndarray,
    length: int,
    impairments: bool,
    clean: bool,
    hardware: bool = True,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """hardware=False sends every frame through an ideal transmitter: the labels become unidentifiable."""
    m = len(y)
    points = modulation.CONSTELLATIONS["QPSK"].astype(np.complex64)
    symbols = points[rng.integers(0, 4, (m, dsp.symbols_for(length + dsp.PAD, SPS, _RRC)))]
    s = dsp.unit_power(dsp.shape(symbols, _RRC, SPS, length + dsp.PAD))
    if hardware:
        s = transmit(s, y, HARDWARE, rng)
    x, meta = dsp.single_antenna_channel(rng, s, length, impairments, k_db=CHANNEL_K_DB, rayleigh_share=0.0)
    return dsp.observe(rng, x[:, None, :], snr, clean, meta), y, meta
