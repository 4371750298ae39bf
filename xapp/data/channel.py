"""The domain-randomised single-antenna receive chain: what independent transmitters, channels and
receivers vary, drawn per frame over wide ranges (ranges listed in xapp/data/CARD.md).

    baseband [n, length + PAD] --multipath with Doppler--> --carrier offset, phase
    noise--> --IQ imbalance, DC--> (+ AWGN, dsp.add_noise) --ADC clip and quantise--> [n, length]

Symbol timing and clock offset are the baseband's (xapp/data/pulses.py draws a random timing and any
real symbol rate), so the chain does not resample.
"""

from __future__ import annotations

import numpy as np

from . import dsp

TAPS = 8
PAD = TAPS - 1  # extra baseband samples the multipath taps eat
AWGN_ONLY_SHARE = 0.25  # frames with no multipath at all
RAYLEIGH_SHARE = 0.5  # of the faded frames
K_DB = (0.0, 15.0)  # Rician K of the others
DELAY_SPREAD = (0.1, 3.0)  # samples, log-uniform (exponential power-delay profile)
STATIC_SHARE = 0.5  # faded frames with a static channel; the others fade within the frame
DOPPLER = (1e-5, 2e-3)  # cycles/sample, log-uniform
SMALL_CFO = 0.01  # half of the frames: a receiver locked to within this
MAX_CFO = 0.2  # the other half: up to this, keeping the signal inside +-0.48 of the band
PHASE_NOISE = (1e-4, 1e-2)  # Wiener step std, rad/sample, log-uniform
IQ_SHARE, IQ_GAIN, IQ_PHASE_DEG = 0.5, 0.1, 6.0
DC_SHARE, DC_LEVEL = 0.5, (0.01, 0.15)  # DC offset amplitude relative to the signal RMS
ADC_SHARE, ADC_BITS, ADC_HEADROOM = 0.3, (4, 12), (1.5, 4.0)  # full scale = headroom x RMS


def log_uniform(rng: np.random.Generator, low: float, high: float, n: int) -> np.ndarray:
    return np.exp(rng.uniform(np.log(low), np.log(high), n))


def multipath(rng: np.random.Generator, x: np.ndarray, length: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """x [n, length + TAPS - 1] -> [n, length] through a per-frame tapped delay line whose diffuse part
    rotates between two independent Rayleigh draws at the Doppler rate (a one-sinusoid fading
    process: unit mean power at every instant)."""
    n = len(x)
    awgn = rng.random(n) < AWGN_ONLY_SHARE
    rician = ~awgn & (rng.random(n) >= RAYLEIGH_SHARE)
    k_lin = np.where(rician, 10 ** (rng.uniform(*K_DB, n) / 10), 0.0)
    spread = log_uniform(rng, *DELAY_SPREAD, n)
    profile = np.exp(-np.arange(TAPS)[None, :] / spread[:, None])
    profile /= profile.sum(axis=1, keepdims=True)
    diffuse = np.where(awgn, 0.0, np.sqrt(1 / (k_lin + 1)))[:, None] * np.sqrt(profile)
    h_a = (dsp.complex_normal(rng, (n, TAPS)) * diffuse).astype(np.complex64)
    h_b = (dsp.complex_normal(rng, (n, TAPS)) * diffuse).astype(np.complex64)
    direct = np.where(awgn, 1.0, np.sqrt(k_lin / (k_lin + 1))) * np.exp(2j * np.pi * rng.random(n))
    fading = ~awgn & (rng.random(n) >= STATIC_SHARE)
    doppler = np.where(fading, log_uniform(rng, *DOPPLER, n), 0.0)
    y = direct[:, None].astype(np.complex64) * x[:, TAPS - 1 : TAPS - 1 + length]
    static = np.flatnonzero(~awgn & ~fading)  # a static channel needs one tap set
    y[static] += dsp.apply_taps(x[static], h_a[static], length)
    rows = np.flatnonzero(fading)
    phase = 2 * np.pi * doppler[rows, None] * np.arange(length)[None, :] + rng.uniform(0, 2 * np.pi, (len(rows), 1))
    y[rows] += dsp.apply_taps(x[rows], h_a[rows], length) * np.cos(phase).astype(np.float32)
    y[rows] += dsp.apply_taps(x[rows], h_b[rows], length) * np.sin(phase).astype(np.float32)
    meta = {
        "rician_k_db": np.where(rician, 10 * np.log10(np.maximum(k_lin, 1e-12)), np.nan).astype(np.float32),
        "delay_spread": np.where(awgn, 0.0, spread).astype(np.float32),
        "doppler": doppler.astype(np.float32),
        "awgn_only": awgn,
    }
    return y, meta


def iq_imbalance_and_dc(rng: np.random.Generator, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Receiver IQ gain/phase imbalance and LO-leakage DC, each on a share of the frames."""
    n = len(x)
    iq = rng.random(n) < IQ_SHARE
    eps = np.where(iq, rng.uniform(-IQ_GAIN, IQ_GAIN, n), 0.0).astype(np.float32)[:, None]
    phi = np.where(iq, np.deg2rad(rng.uniform(-IQ_PHASE_DEG, IQ_PHASE_DEG, n)), 0.0).astype(np.float32)[:, None]
    # I' = (1+eps) I, Q' = (1-eps)(Q cos(phi) + I sin(phi)), written as mu * x + nu * conj(x)
    a, b = (1 - eps) * np.cos(phi), (1 - eps) * np.sin(phi)
    mu = ((1 + eps) + a + 1j * b) / 2
    nu = ((1 + eps) - a + 1j * b) / 2
    out = x.copy()
    rows = np.flatnonzero(iq)
    out[rows] = mu[rows].astype(np.complex64) * x[rows] + nu[rows].astype(np.complex64) * np.conj(x[rows])
    dc_on = rng.random(n) < DC_SHARE
    dc = np.where(dc_on, rng.uniform(*DC_LEVEL, n), 0.0) * np.exp(2j * np.pi * rng.random(n))
    out[dc_on] += dc[dc_on, None].astype(np.complex64)
    return out, {"iq_gain": eps[:, 0], "iq_phase_deg": np.rad2deg(phi[:, 0]), "dc_level": np.abs(dc).astype(np.float32)}


def single_antenna(
    rng: np.random.Generator, s: np.ndarray, length: int, bandwidth: np.ndarray, impaired: bool
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Baseband [n, length + PAD] with occupied bandwidths [n] (cycles/sample) -> received [n, length],
    unit power, before noise. impaired=False: the frame is cut at sample 0, nothing else."""
    n = len(s)
    if not impaired:
        return dsp.unit_power(s[:, :length]), {}
    x, meta = multipath(rng, s[:, : length + TAPS - 1], length)
    x = dsp.unit_power(x)
    room = np.clip(0.48 - bandwidth / 2, 0.0, MAX_CFO)
    cfo = np.where(rng.random(n) < 0.5, rng.uniform(-SMALL_CFO, SMALL_CFO, n), rng.uniform(-1, 1, n) * room)
    pn = log_uniform(rng, *PHASE_NOISE, n)
    x *= dsp.oscillator(rng, n, length, cfo, pn)
    x, front = iq_imbalance_and_dc(rng, x)
    meta |= front | {
        "cfo": cfo.astype(np.float32),
        "phase_noise_std": pn.astype(np.float32),
    }
    return dsp.unit_power(x), meta


def adc(rng: np.random.Generator, x: np.ndarray, meta: dict[str, np.ndarray]) -> np.ndarray:
    """Clip and quantise I and Q of a share of the (noisy, unit-power) frames [n, 1, length], rescale
    to unit power; meta["adc_bits"] is 0 for frames left unquantised. Signal parts kept in meta
    ("clean", "interferer") are rescaled with their frames."""
    n = len(x)
    on = rng.random(n) < ADC_SHARE
    bits = np.where(on, rng.integers(ADC_BITS[0], ADC_BITS[1] + 1, n), 0)
    meta["adc_bits"] = bits.astype(np.int64)
    rows = np.flatnonzero(on)
    if len(rows):
        full_scale = (rng.uniform(*ADC_HEADROOM, len(rows)) / np.sqrt(2)).astype(np.float32)[:, None, None]
        step = (2 * full_scale / 2.0 ** bits[rows, None, None]).astype(np.float32)
        parts = x[rows].view(np.float32)
        parts = (np.floor(np.clip(parts, -full_scale, full_scale * 0.999999) / step) + 0.5) * step
        x[rows] = parts.view(np.complex64)
        scale = (1 / np.sqrt(dsp.power(x[rows]))).astype(np.float32)
        x[rows] *= scale
        for part in ("clean", "interferer"):
            if part in meta:
                meta[part][rows] *= scale
    return x
