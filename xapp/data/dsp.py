"""Vectorised signal-processing blocks shared by the task generators.

Every function works on a whole batch `[n, samples]` at once; per-frame parameters are arrays of
length n. Frequencies are in cycles per sample.
"""

from __future__ import annotations

import zlib

import numpy as np

TAPS = 4  # multipath taps (integer-sample delays 0..TAPS-1)
PAD = 16  # extra baseband samples a generator makes so timing offset and multipath can eat them
MAX_TIMING = 8.0  # random start offset in samples (covers a symbol at 8 samples/symbol)
MAX_SRO = 250e-6  # sample-rate offset, fraction
MAX_CFO = 3e-3  # carrier frequency offset, cycles/sample
MAX_PHASE_NOISE = 4e-3  # Wiener phase-noise step std, rad/sample


def rng_for(task: str, seed: int, *keys: int) -> np.random.Generator:
    """Different tasks with the same seed draw independent streams; same (task, seed, keys), same bytes."""
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(task.encode()), *keys]))


def complex_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Circular complex Gaussian, unit variance, complex64."""
    z = rng.standard_normal((*shape[:-1], 2 * shape[-1]), dtype=np.float32).view(np.complex64)
    z *= np.float32(np.sqrt(0.5))
    return z


def power(x: np.ndarray) -> np.ndarray:
    """Mean |x|^2 of each frame (all axes but the first), shaped to broadcast against x."""
    v = np.ascontiguousarray(x).reshape(len(x), -1)
    if np.iscomplexobj(v):
        v = v.view(np.float32 if v.dtype == np.complex64 else np.float64)
    p = np.einsum("ij,ij->i", v, v) / (x[0].size if len(x) else 1)
    return p.reshape((-1,) + (1,) * (x.ndim - 1))


def unit_power(x: np.ndarray) -> np.ndarray:
    return x * (1 / np.sqrt(np.maximum(power(x), 1e-30))).astype(np.float32)


def rrc_taps(sps: int, beta: float = 0.35, span: int = 8) -> np.ndarray:
    """Root-raised-cosine pulse, `span` symbols long, unit energy per symbol."""
    t = (np.arange(span * sps + 1) - span * sps / 2) / sps
    with np.errstate(divide="ignore", invalid="ignore"):
        h = (np.sin(np.pi * t * (1 - beta)) + 4 * beta * t * np.cos(np.pi * t * (1 + beta))) / (
            np.pi * t * (1 - (4 * beta * t) ** 2)
        )
    h[t == 0] = 1 - beta + 4 * beta / np.pi
    edge = np.isclose(np.abs(t), 1 / (4 * beta))
    h[edge] = beta / np.sqrt(2) * ((1 + 2 / np.pi) * np.sin(np.pi / (4 * beta)) + (1 - 2 / np.pi) * np.cos(np.pi / (4 * beta)))
    return (h / np.sqrt(np.sum(h**2) / sps)).astype(np.float32)


def shape(symbols: np.ndarray, taps: np.ndarray, sps: int, length: int) -> np.ndarray:
    """Upsample [n, symbols] by sps and filter with taps, steady-state part only (polyphase).

    Equals scipy.signal.upfirdn(taps, symbols, up=sps)[:, len(taps)-1:][:, :length], several times
    faster. A loop over the few polyphase rows rather than a GEMM: OpenBLAS threads a tall-skinny GEMM
    and, on a busy machine, spends ten times the CPU spinning.
    """
    span = -(-len(taps) // sps)
    padded = np.zeros(span * sps, np.float32)
    padded[: len(taps)] = taps
    phases = padded.reshape(span, sps)[::-1].astype(symbols.dtype)  # phases[i, p] = taps[p + (span-1-i)*sps]
    rows = -(-length // sps)
    if symbols.shape[1] < rows + span - 1:
        raise ValueError(f"shape needs {rows + span - 1} symbols for {length} samples, got {symbols.shape[1]}")
    y = np.zeros((len(symbols), rows, sps), symbols.dtype)
    for i in range(span):
        y += symbols[:, i : i + rows, None] * phases[i]
    return y.reshape(len(symbols), -1)[:, :length]


def symbols_for(length: int, sps: int, taps: np.ndarray) -> int:
    """How many symbols `shape` needs to return `length` steady-state samples."""
    return -(-length // sps) + -(-len(taps) // sps) - 1


def continuous_phase(freq: np.ndarray, phase0: np.ndarray) -> np.ndarray:
    """exp(j * (phase0 + 2*pi*cumsum(freq))) with freq in cycles/sample: a constant-envelope signal."""
    phase = np.cumsum(freq, axis=-1, dtype=np.float64)
    phase = (2 * np.pi * phase + phase0[:, None]).astype(np.float32)
    return expj(phase)


def expj(phase: np.ndarray) -> np.ndarray:
    out = np.empty(phase.shape, np.complex64)
    np.cos(phase, out=out.real)
    np.sin(phase, out=out.imag)
    return out


def band_limited(rng: np.random.Generator, n: int, length: int, f_lo: float, f_hi: np.ndarray) -> np.ndarray:
    """Real Gaussian message with a flat spectrum on [f_lo, f_hi[i]] per frame, unit RMS, float32."""
    freqs = np.fft.rfftfreq(length)
    keep = (freqs[None, :] >= f_lo) & (freqs[None, :] <= f_hi[:, None])
    spectrum = complex_normal(rng, (n, len(freqs))) * keep
    m = np.fft.irfft(spectrum, n=length, axis=-1).astype(np.float32)
    return unit_power(m)


def fractional_start(s: np.ndarray, length: int, tau: np.ndarray, sro: np.ndarray) -> np.ndarray:
    """Sample s at t_k = 1 + tau + k * (1 + sro), k < length, by linear interpolation (timing + clock
    offset). Needs tau >= 0, |sro| * length < 1 and s long enough for the last index."""
    n, width = s.shape
    offset = (1 + tau[:, None] + np.arange(length)[None, :] * sro[:, None]).astype(np.float32)
    i = offset.astype(np.intp)  # offset > 0, so truncation is floor
    frac = offset - i
    i += (np.arange(n, dtype=np.intp) * width)[:, None] + np.arange(length, dtype=np.intp)[None, :]
    flat = s.ravel()
    x0 = flat.take(i)
    x1 = flat.take(i + 1)
    x1 -= x0
    x1 *= frac
    x1 += x0
    return x1


def multipath_taps(
    rng: np.random.Generator, n: int, k_db: tuple[float, float] = (0.0, 10.0), rayleigh_share: float = 0.5
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per-frame tapped delay line: Rician (K in k_db, LOS on tap 0) or Rayleigh, exponential profile."""
    rician = rng.random(n) >= rayleigh_share
    k_lin = 10 ** (rng.uniform(*k_db, n) / 10)
    decay = rng.uniform(0.3, 2.0, n)  # delay spread in samples
    profile = np.exp(-np.arange(TAPS)[None, :] / decay[:, None])
    profile /= profile.sum(axis=1, keepdims=True)
    h = complex_normal(rng, (n, TAPS)) * np.sqrt(profile)
    los = np.exp(2j * np.pi * rng.random(n))
    w = np.where(rician, np.sqrt(k_lin / (k_lin + 1)), 0.0)
    h *= np.where(rician, np.sqrt(1 / (k_lin + 1)), 1.0)[:, None]
    h[:, 0] += w * los
    meta = {
        "rician_k_db": np.where(rician, 10 * np.log10(k_lin), np.nan).astype(np.float32),
        "delay_spread": decay.astype(np.float32),
    }
    return h.astype(np.complex64), meta


def apply_taps(x: np.ndarray, h: np.ndarray, length: int) -> np.ndarray:
    """y[k] = sum_d h[d] * x[k + T-1 - d]; x must hold length + T - 1 samples."""
    t = h.shape[1]
    y = h[:, :1] * x[:, t - 1 : t - 1 + length]
    for d in range(1, t):
        y += h[:, d : d + 1] * x[:, t - 1 - d : t - 1 - d + length]
    return y


def oscillator(rng: np.random.Generator, n: int, length: int, cfo: np.ndarray, pn_std: np.ndarray) -> np.ndarray:
    """exp(j(2*pi*cfo*k + phi0 + Wiener phase noise)), complex64 [n, length].

    The Wiener increments are drawn every 8 samples (std scaled by sqrt(8)) and held: the same phase
    random walk at 8-sample granularity, for an eighth of the random numbers."""
    hold = 8
    steps = rng.standard_normal((n, -(-length // hold)), dtype=np.float32)
    steps *= (pn_std[:, None] * np.sqrt(hold) / hold).astype(np.float32)
    phase = np.repeat(steps, hold, axis=-1)[:, :length]
    phase[:, 0] = rng.uniform(-np.pi, np.pi, n)
    np.cumsum(phase, axis=-1, out=phase)
    phase += (2 * np.pi * cfo[:, None] * np.arange(length)[None, :]).astype(np.float32)
    return expj(phase)


def single_antenna_channel(
    rng: np.random.Generator,
    s: np.ndarray,
    length: int,
    impaired: bool,
    k_db: tuple[float, float] = (0.0, 10.0),
    rayleigh_share: float = 0.5,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Baseband [n, length + PAD] -> received [n, length], unit power: timing/clock offset, multipath
    (see multipath_taps), carrier offset and phase noise. impaired=False: the frame is cut at sample 0."""
    n = s.shape[0]
    if not impaired:
        return unit_power(s[:, :length]), {}
    tau = rng.uniform(0.0, MAX_TIMING, n)
    sro = rng.uniform(-MAX_SRO, MAX_SRO, n)
    x = fractional_start(s, length + TAPS - 1, tau, sro)
    h, meta = multipath_taps(rng, n, k_db, rayleigh_share)
    x = unit_power(apply_taps(x, h, length))
    cfo = rng.uniform(-MAX_CFO, MAX_CFO, n)
    pn = rng.uniform(0.0, MAX_PHASE_NOISE, n)
    x *= oscillator(rng, n, length, cfo, pn)
    meta |= {
        "timing_offset": tau.astype(np.float32),
        "sro_ppm": (sro * 1e6).astype(np.float32),
        "cfo": cfo.astype(np.float32),
        "phase_noise_std": pn.astype(np.float32),
    }
    return x, meta


def add_noise(
    rng: np.random.Generator, x: np.ndarray, snr_db: np.ndarray, reference: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Add complex AWGN at `snr_db` relative to each frame's `reference` power (default: x's own power)
    and rescale the sum to unit power.

    Returns (noisy, scale): `x * scale` is the noiseless part of `noisy`, for callers that keep it.
    """
    p = power(x) if reference is None else np.reshape(reference, (-1,) + (1,) * (x.ndim - 1))
    sigma = np.sqrt(p * 10 ** (-snr_db.reshape(p.shape) / 10)).astype(np.float32)
    noisy = complex_normal(rng, x.shape)
    noisy *= sigma
    noisy += x
    scale = (1 / np.sqrt(power(noisy))).astype(np.float32)
    noisy *= scale
    return noisy, scale


def observe(
    rng: np.random.Generator, x: np.ndarray, snr_db: np.ndarray, clean: bool, meta: dict[str, np.ndarray]
) -> np.ndarray:
    """Noisy unit-power frames [n, antennas, samples] from noiseless x; with clean, meta["clean"] gets
    the noiseless part at the same scale."""
    noisy, scale = add_noise(rng, x, snr_db)
    if clean:
        meta["clean"] = x * scale
    return noisy
