"""Compiled CPU kernels for the side features' per-symbol and per-bin work (xapp.model.side).

On the CPU the side features cost their torch op count, not their FLOPs: ~1,500 ops of ~3 µs for a
batch's symbols and cancellation, whatever its size, and several passes over memory per elementwise
chain at batch 32 (docs/research.md, "Session 19"). These numba kernels do the work between the FFTs
(which stay in torch) in one loop per frame each, without the GIL, so that the side thread runs
beside the trunk's. Each mirrors the torch function of xapp.model.side named in its docstring, which
stays the reference and the path for other devices; tests hold the two together. Sums are taken in
float64, so values may differ from torch's float32 ones in the last bits.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numba
import numpy as np

TWO_PI = 2 * math.pi


def _compiler(**options: object) -> Callable[[Callable], Callable]:
    """numba.njit without the GIL, cached on disk (next to this file, or where NUMBA_CACHE_DIR or the
    user's cache directory points: the first compile takes ~16 s on this project's 2-core box, a
    cached load 0.4 s). Where no cache location is writable (an installed package on a read-only
    root, no home) the kernels are compiled at each start instead of failing the import."""

    def decorate(function: Callable) -> Callable:
        try:
            return numba.njit(cache=True, nogil=True, error_model="numpy", **options)(function)
        except RuntimeError:  # numba: "cannot cache function ...: no locator available"
            return numba.njit(cache=False, nogil=True, error_model="numpy", **options)(function)

    return decorate


_kernel = _compiler()
# Sums over a frame's samples or symbols, reassociated so that the compiler vectorises them.
_summing_kernel = _compiler(fastmath={"reassoc", "nsz"})
# Statistics of finite rows (spectra, envelopes, angles): sums and maxima vectorised.
_statistic = _compiler(fastmath={"reassoc", "nsz", "nnan", "ninf"})
# atan(t) = t (c0 + c1 t^2 + ...), c_k = (-1)^k / (2k + 1): 12 terms on |t| <= tan(pi / 8) leave under 1e-10
_ATAN_SERIES = tuple((-1.0) ** k / (2 * k + 1) for k in range(12))
_TAN_PI_8 = math.tan(math.pi / 8)


@_kernel
def _atan2(y: float, x: float) -> float:
    """math.atan2 to 1e-10 without a libm call or a branch, so that a loop of them vectorises (the
    angle per sample or symbol dominated the loops that take one): octant reduction, a pi/4 shift
    above tan(pi/8), an odd Taylor series below; zeros' signs pick 0 or pi as libm's do."""
    ax, ay = abs(x), abs(y)
    big, small = max(ax, ay), min(ax, ay)
    t = small / big if big > 0 else 0.0
    shifted = t > _TAN_PI_8
    u = (t - 1) / (t + 1) if shifted else t
    u2 = u * u
    c = _ATAN_SERIES
    series = c[11]
    series = series * u2 + c[10]
    series = series * u2 + c[9]
    series = series * u2 + c[8]
    series = series * u2 + c[7]
    series = series * u2 + c[6]
    series = series * u2 + c[5]
    series = series * u2 + c[4]
    series = series * u2 + c[3]
    series = series * u2 + c[2]
    series = series * u2 + c[1]
    series = series * u2 + c[0]
    angle = u * series + (math.pi / 4 if shifted else 0.0)
    angle = math.pi / 2 - angle if ay > ax else angle
    angle = math.pi - angle if math.copysign(1.0, x) < 0 else angle
    return math.copysign(angle, y)


# sin and cos on |r| <= pi/4 by their Taylor series to r^15 and r^16: under 1e-16
_SIN_SERIES = tuple((-1.0) ** k / math.factorial(2 * k + 1) for k in range(8))
_COS_SERIES = tuple((-1.0) ** k / math.factorial(2 * k) for k in range(9))


@_kernel
def _cis(angle: float) -> complex:
    """cos(angle) + j sin(angle) to 4e-14 for |angle| < 500 and 2e-12 below 1e4 (the largest here, the
    symbol rate's turn over a frame, stays under 3.3e3), without libm calls or branches so that a loop
    of them vectorises: quadrant reduction and the two series."""
    k = np.floor(angle * (2 / math.pi) + 0.5)
    r = angle - k * (math.pi / 2)
    r2 = r * r
    s_, c_ = _SIN_SERIES, _COS_SERIES
    sine = r * (s_[0] + r2 * (s_[1] + r2 * (s_[2] + r2 * (s_[3] + r2 * (s_[4] + r2 * (s_[5] + r2 * (s_[6] + r2 * s_[7])))))))
    cosine = c_[0] + r2 * (c_[1] + r2 * (c_[2] + r2 * (c_[3] + r2 * (c_[4] + r2 * (c_[5] + r2 * (c_[6] + r2 * (c_[7] + r2 * c_[8])))))))
    quadrant = int(k) & 3  # angle = r + quadrant pi/2 (mod 2 pi)
    swapped = (quadrant & 1) == 1
    cos_q = sine if swapped else cosine
    sin_q = cosine if swapped else sine
    cos_q = -cos_q if ((quadrant + 1) & 2) == 2 else cos_q
    sin_q = -sin_q if (quadrant & 2) == 2 else sin_q
    return complex(cos_q, sin_q)


@_kernel
def _moving_mean(v: np.ndarray, half: int, out: np.ndarray) -> None:
    """`side._moving_mean` of one row v [m] (float32 or complex64) into out, as torch computes it: a
    cumulative sum accumulated in double but stored in v's precision, differenced, over the window's
    count. Where a row spans decades (a spectrum's band against its noise floor) those differences are
    rounding-limited; the heads were trained on exactly these values, so they are kept."""
    m = len(v)
    width = 2 * half + 1
    cumulative = np.empty(m + width, dtype=v.dtype)
    acc = v[0] * 0.0
    for p in range(m + width):
        q = p - half - 1
        if 0 <= q < m:
            acc += v[q]
        cumulative[p] = acc
    for j in range(m):
        count = min(m, j + half + 1) - max(0, j - half)
        out[j] = (cumulative[j + width] - cumulative[j]) / np.float32(count)


@_kernel
def _phase_track(symbols: np.ndarray, valid: np.ndarray, row: int, window: int, out: np.ndarray) -> complex:
    """`_track_phase` of one row of symbols into out (float64 [m]); returns the sum of their negated fourth power."""
    m = symbols.shape[1]
    fourth = np.empty(m, dtype=np.complex64)
    total = 0j
    for j in range(m):
        z2 = symbols[row, j] * symbols[row, j]
        fourth[j] = -(z2 * z2) if valid[row, j] else np.complex64(0)
        total += fourth[j]
    mean = np.empty(m, dtype=np.complex64)
    _moving_mean(fourth, window // 2, mean)
    angles = np.empty(m, dtype=np.float64)
    for j in range(m):  # a pass of its own: it vectorises
        angles[j] = _atan2(mean[j].imag, mean[j].real)
    correction = 0.0
    previous = 0.0
    for j in range(m):
        angle = angles[j]
        if j > 0:
            step = angle - previous
            wrapped = (step + math.pi) - TWO_PI * math.floor((step + math.pi) / TWO_PI) - math.pi
            if wrapped == -math.pi and step > 0:
                wrapped = math.pi
            if abs(step) >= math.pi:
                correction += wrapped - step
        previous = angle
        out[j] = (angle + correction) / 4
    return total


@_kernel
def _level(a: float, side: int, inv_step: np.float32, step: np.float32) -> np.float32:
    """`_nearest_level` of one folded coordinate, in float32 as torch computes it."""
    return (min(np.floor(np.float32(a) * inv_step), np.float32(side / 2 - 1)) + np.float32(0.5)) * step


@_kernel
def _steps(side: int, gain: float) -> tuple[np.float32, np.float32]:
    step = 2 * gain / math.sqrt(2 * (side * side - 1) / 3)
    return np.float32(1 / step), np.float32(step)


@_summing_kernel
def _fit_error(folded: np.ndarray, weight: np.ndarray, side: int, gain: float) -> float:
    """Sum over symbols of weight times the squared distance of |I| and |Q| (`folded` [2, m] float32) to
    their nearest level."""
    inv, step = _steps(side, gain)
    error = np.float32(0)
    for axis in range(2):
        for j in range(folded.shape[1]):
            a = folded[axis, j]
            d = _level(a, side, inv, step) - a
            error += d * d * weight[j]
    return error


@_kernel
def _fold(z: np.ndarray, folded: np.ndarray) -> None:
    """|I| and |Q| of symbols z [m] into folded [2, m] (float32)."""
    for j in range(len(z)):
        folded[0, j] = abs(z[j].real)
        folded[1, j] = abs(z[j].imag)


@_kernel
def symbol_statistics(symbols: np.ndarray, valid: np.ndarray, line: np.ndarray, rate: np.ndarray,
                      grids: np.ndarray, gains: np.ndarray, window: int, bins: int, top: float) -> np.ndarray:
    """`_symbols`: [B, 2 * len(grids) + 4 + bins] float32."""
    b, m = symbols.shape
    width = 2 * len(grids) + 4 + bins
    out = np.zeros((b, width), dtype=np.float32)
    phase = np.empty(m, dtype=np.float64)
    folded = np.empty((2, m), dtype=np.float32)
    weight = np.empty(m, dtype=np.float32)
    tracked = np.empty(m, dtype=np.complex128)
    whole = np.empty(m, dtype=np.complex128)
    for i in range(b):
        total = _phase_track(symbols, valid, i, window, phase)
        whole_turn = -_atan2(total.imag, total.real) / 4
        rotation = _cis(whole_turn)
        count = max(1, valid[i].sum())
        for j in range(m):  # a pass of its own: it vectorises
            tracked[j] = complex(symbols[i, j]) * _cis(-phase[j])
            whole[j] = complex(symbols[i, j]) * rotation
        power4 = 0.0
        fourth = 0j
        for j in range(m):
            if valid[i, j]:
                p = tracked[j].real ** 2 + tracked[j].imag ** 2
                power4 += p * p
                t2 = tracked[j] * tracked[j]
                fourth += t2 * t2
                k = min(int(math.floor(math.sqrt(p) * (bins / top))), bins - 1)
                out[i, 2 * len(grids) + 4 + k] += 1
        for j in range(m):
            weight[j] = valid[i, j]
        for r, s in enumerate((tracked, whole)):
            _fold(s, folded)
            for g in range(len(grids)):
                best = np.inf
                for gain in gains:
                    best = min(best, _fit_error(folded, weight, grids[g], gain) / count / gain**2)
                out[i, r * len(grids) + g] = math.log10(max(best, 1e-12))
        base = 2 * len(grids)
        out[i, base] = power4 / count
        out[i, base + 1] = abs(fourth / count)
        out[i, base + 2] = math.log10(max(line[i], 1e-12))
        out[i, base + 3] = math.log10(rate[i])
        for k in range(bins):
            out[i, base + 4 + k] /= count
    return out


@_kernel
def _nearest_square_row(z: np.ndarray, valid: np.ndarray, grids: np.ndarray, gains: np.ndarray, shares: np.ndarray,
                        out: np.ndarray) -> None:
    """`_nearest_square` of one row of symbols z (complex128 [m]) into out."""
    folded = np.empty((2, len(z)), dtype=np.float32)
    _fold(z, folded)
    weight = valid.astype(np.float32)
    chosen_side, chosen_gain, chosen_error = grids[0], gains[0], 0.0
    for g in range(len(grids)):
        best_error, best_gain = 0.0, -1.0
        for gain in gains:
            error = _fit_error(folded, weight, grids[g], gain)
            if best_gain < 0 or error < best_error:
                best_error, best_gain = error, gain
        if g == 0 or best_error < shares[g - 1] * chosen_error:
            chosen_side, chosen_gain, chosen_error = grids[g], best_gain, best_error
    inv, step = _steps(chosen_side, chosen_gain)
    for j in range(len(z)):
        re, im = z[j].real, z[j].imag
        level_re = _level(abs(re), chosen_side, inv, step) * np.sign(np.float32(re))
        level_im = _level(abs(im), chosen_side, inv, step) * np.sign(np.float32(im))
        out[j] = complex(level_re, level_im)


@_kernel
def cancel_weights(symbols: np.ndarray, valid: np.ndarray, grids: np.ndarray, gains: np.ndarray, shares: np.ndarray,
                   track_window: int, gain_window: int) -> np.ndarray:
    """The weights of `_cancel`'s impulse train, decided * gain * valid ([B, m] complex64): the symbols
    phase-tracked, decided on the grid that suits the frame (`_nearest_square`), turned back, given the
    sliding complex gain."""
    b, m = symbols.shape
    out = np.zeros((b, m), dtype=np.complex64)
    phase = np.empty(m, dtype=np.float64)
    turns = np.empty(m, dtype=np.complex128)
    rotated = np.empty(m, dtype=np.complex128)
    decided = np.empty(m, dtype=np.complex128)
    products = np.empty(m, dtype=np.complex64)
    powers = np.empty(m, dtype=np.float32)
    gain_num = np.empty(m, dtype=np.complex64)
    gain_den = np.empty(m, dtype=np.float32)
    for i in range(b):
        _phase_track(symbols, valid, i, track_window, phase)
        for j in range(m):
            turns[j] = _cis(phase[j])
        for j in range(m):
            rotated[j] = complex(symbols[i, j]) * turns[j].conjugate()
        _nearest_square_row(rotated, valid[i], grids, gains, shares, decided)
        for j in range(m):
            decided[j] = decided[j] * turns[j]
            products[j] = complex(symbols[i, j]) * decided[j].conjugate()
            powers[j] = decided[j].real ** 2 + decided[j].imag ** 2
        _moving_mean(products, gain_window // 2, gain_num)
        _moving_mean(powers, gain_window // 2, gain_den)
        for j in range(m):
            if valid[i, j]:
                out[i, j] = decided[j] * (complex(gain_num[j]) / max(gain_den[j], 1e-12))
    return out


@_kernel
def impulse_grid(weights: np.ndarray, at: np.ndarray, n: int, grid_factor: int) -> np.ndarray:
    """`_impulse_spectrum` before its FFT: impulses of `weights` at instants `at` spread onto a grid
    `grid_factor` times finer than the samples by the Keys kernel ([B, n * grid_factor] complex64)."""
    b, m = weights.shape
    fine = n * grid_factor
    grid = np.zeros((b, fine), dtype=np.complex64)
    for i in range(b):
        for offset in (-1, 0, 1, 2):
            for j in range(m):
                w = weights[i, j]
                if w == 0:
                    continue
                position = np.float32(at[i, j]) * np.float32(grid_factor)
                node = np.floor(position) + offset
                a = abs(np.float32(position - node))
                if a < 1:
                    k = (np.float32(1.5) * a - np.float32(2.5)) * a * a + np.float32(1)
                elif a < 2:
                    k = ((np.float32(-0.5) * a + np.float32(2.5)) * a - np.float32(4)) * a + np.float32(2)
                else:
                    continue
                grid[i, int(node) % fine] += w * k
    return grid


@_kernel
def fitted_response(spectrum: np.ndarray, train: np.ndarray, half: np.ndarray) -> np.ndarray:
    """`_cancel`'s response: the circular mean over 2 half + 1 bins of spectrum * conj(train) over that of
    |train|^2 ([B, n] complex64)."""
    b, n = spectrum.shape
    out = np.empty((b, n), dtype=np.complex64)
    for i in range(b):
        h = half[i]
        num, den = 0j, 0.0
        for k in range(-h, h + 1):
            t = complex(train[i, k % n])
            num += complex(spectrum[i, k % n]) * t.conjugate()
            den += t.real ** 2 + t.imag ** 2
        for j in range(n):
            out[i, j] = (num / (2 * h + 1)) / max(den / (2 * h + 1), 1e-12)
            add, drop = j + h + 1, j - h  # the window's next bin and its first, circularly
            add, drop = add - n if add >= n else add, drop + n if drop < 0 else drop
            t_add, t_drop = complex(train[i, add]), complex(train[i, drop])
            num += complex(spectrum[i, add]) * t_add.conjugate() - complex(spectrum[i, drop]) * t_drop.conjugate()
            den += t_add.real ** 2 + t_add.imag ** 2 - t_drop.real ** 2 - t_drop.imag ** 2
    return out


@_kernel
def weaker_residual(decision_directed: np.ndarray, turn: np.ndarray, frame: np.ndarray, start: int, stop: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """`_weaker_residual`: `_cancel`'s two residuals over samples start..stop, the decision-directed one
    less its share along `turn` and the frame less its constant envelope. Returns their mean powers
    [B, 2] (float32) and the weaker of the two [B, stop - start] (complex64)."""
    b, n = frame.shape
    length = stop - start
    power = np.empty((b, 2), dtype=np.float32)
    weaker = np.empty((b, length), dtype=np.complex64)
    amplitude = np.empty(n, dtype=np.float64)
    for i in range(b):
        along = 0j
        envelope = 0.0
        for j in range(n):
            along += decision_directed[i, j] * turn[i, j].conjugate()
            f = frame[i, j]
            amplitude[j] = math.sqrt(f.real * f.real + f.imag * f.imag)
            envelope += amplitude[j]
        along /= n
        envelope /= n
        first = second = 0.0
        for j in range(start, stop):
            d = decision_directed[i, j] - along * turn[i, j]
            c = frame[i, j] * (1 - envelope / max(amplitude[j], 1e-12))
            first += d.real * d.real + d.imag * d.imag
            second += c.real * c.real + c.imag * c.imag
        power[i, 0], power[i, 1] = first / length, second / length
        constant = power[i, 1] < power[i, 0]
        for j in range(start, stop):
            if constant:
                weaker[i, j - start] = frame[i, j] * (1 - envelope / max(amplitude[j], 1e-12))
            else:
                weaker[i, j - start] = decision_directed[i, j] - along * turn[i, j]
    return power, weaker


@_kernel
def peak_track(stft: np.ndarray) -> np.ndarray:
    """`_peak_track` after its short-time power spectra stft [B, windows, size]: [B, 5] float32."""
    b, frames, size = stft.shape
    out = np.zeros((b, 5), dtype=np.float32)
    peaks = np.empty(frames, dtype=np.int64)
    moves = np.empty(max(frames - 1, 0), dtype=np.int64)
    for i in range(b):
        share = 0.0
        for f in range(frames):
            peaks[f] = np.argmax(stft[i, f])
            total = 0.0
            for k in range(size):
                total += stft[i, f, k]
            share += stft[i, f, peaks[f]] / max(total, 1e-12)
        for f in range(frames - 1):
            moves[f] = (peaks[f + 1] - peaks[f] + size // 2) % size - size // 2
            distance = abs(moves[f])
            out[i, 0] += distance == 0
            out[i, 1] += 1 <= distance <= 2
            out[i, 2] += distance > 2
        for k in range(3):
            out[i, k] /= frames - 1
        steady = 0
        for f in range(frames - 2):
            steady += abs((moves[f + 1] - moves[f] + size // 2) % size - size // 2) <= 1
        out[i, 3] = steady / (frames - 2)
        out[i, 4] = share / frames
    return out


@_kernel
def _frequency(k: int, size: int) -> float:
    """Bin k of an FFT of `size` points, in cycles/sample (torch.fft.fftfreq)."""
    return (k if k < (size + 1) // 2 else k - size) / size


@_kernel
def smoothed(psd: np.ndarray, smoothing: int) -> np.ndarray:
    """The power spectra [B, n] without their DC bin, averaged over `smoothing` bins (float32)."""
    b, n = psd.shape
    out = np.empty((b, n), dtype=np.float32)
    row = np.empty(n, dtype=np.float32)
    for i in range(b):
        row[:] = psd[i]
        row[0] = 0
        _moving_mean(row, smoothing // 2, out[i])
    return out


@_kernel
def occupied(x: np.ndarray, power: np.ndarray, floor: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`_occupied` once the smoothed spectra `power` and their floors are known: the frames less their
    mean at unit power (complex64 [B, n]), their occupied width and coarse carrier (float32 [B] each)."""
    b, n = x.shape
    out = np.empty((b, n), dtype=np.complex64)
    width = np.empty(b, dtype=np.float32)
    coarse = np.empty(b, dtype=np.float32)
    for i in range(b):
        threshold = max(np.float32(3) * floor[i], np.float32(0.05) * power[i].max())
        occupied_bins, mass, moment = 0, 0.0, 0.0
        for j in range(n):
            occupied_bins += power[i, j] > threshold
            above = max(power[i, j] - floor[i], np.float32(0))
            mass += above
            moment += above * _frequency(j, n)
        width[i] = occupied_bins / n
        coarse[i] = moment / max(mass, 1e-12)
        mean = 0j
        for j in range(n):
            mean += x[i, j]
        mean /= n
        energy = 0.0
        for j in range(n):
            c = x[i, j] - mean
            energy += c.real * c.real + c.imag * c.imag
        scale = 1 / max(math.sqrt(energy / n), 1e-12)
        for j in range(n):
            out[i, j] = (x[i, j] - mean) * scale
    return out, width, coarse


@_kernel
def carrier(fourth_spectrum: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """`_carrier` after the x^4 FFT: the strongest bin over 4, of the 4 candidates it allows the one
    nearest the coarse carrier (float32 [B])."""
    b, size = fourth_spectrum.shape
    out = np.empty(b, dtype=np.float32)
    for i in range(b):
        best, k = -1.0, 0
        for j in range(size):
            z = fourth_spectrum[i, j]
            p = z.real * z.real + z.imag * z.imag
            if p > best:
                best, k = p, j
        fine = np.float32(_frequency(k, size))
        nearest, distance = 0.0, np.inf
        for c in range(-2, 3):
            candidate = fine / 4 + c / 4
            if abs(candidate - coarse[i]) < distance:
                nearest, distance = candidate, abs(candidate - coarse[i])
        out[i] = nearest
    return out


@_kernel
def symbol_rate(cyclic: np.ndarray, envelope: np.ndarray, width: np.ndarray, rates: tuple[float, float],
                gap: int, flank: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`_symbol_rate` after the envelope's FFT `cyclic` (zero-padded to `size` = 2 (bins - 1)): rate,
    line strength and phase (float32 [B] each)."""
    b, bins = cyclic.shape
    n = envelope.shape[1]
    size = 2 * (bins - 1)
    last = bins - 1
    rate = np.empty(b, dtype=np.float32)
    line = np.empty(b, dtype=np.float32)
    phase = np.empty(b, dtype=np.float32)
    spectrum = np.empty(bins, dtype=np.float32)
    local = np.empty(bins, dtype=np.float32)
    lines = np.empty(bins, dtype=np.float32)
    offset = gap + flank // 2
    for i in range(b):
        for j in range(bins):
            z = cyclic[i, j]
            spectrum[j] = z.real * z.real + z.imag * z.imag
        _moving_mean(spectrum, flank // 2, local)
        for j in range(bins):
            flanks = (local[max(j - offset, 0)] + local[min(j + offset, last)]) / np.float32(2)
            lines[j] = spectrum[j] / max(flanks, np.float32(1e-12))
        low = min(max(width[i] / 2.4, rates[0]), rates[1])
        high = min(max(width[i] / 0.75, rates[0]), rates[1])
        k, best = 0, 0.0  # bins outside [low, high] count as 0: bin 0 wins if nothing inside is larger
        for j in range(max(int(low * size) - 1, 0), min(int(high * size) + 2, bins)):
            if low <= j / size <= high and lines[j] > best:
                k, best = j, lines[j]
        for _ in range(2):
            h = k // 2
            top, at_top = -1.0, 0
            for c in range(-2, 3):
                near = min(max(h + c, 0), last)
                if lines[near] > top:
                    top, at_top = lines[near], near
            if top > max(0.25 * lines[k], 8.0) and h >= rates[0] * size:
                k = at_top
        a = math.log10(max(spectrum[max(k - 1, 0)], 1e-12))
        mid = math.log10(max(spectrum[k], 1e-12))
        c = math.log10(max(spectrum[min(k + 1, last)], 1e-12))
        curvature = a - 2 * mid + c
        shift = min(max(0.5 * (a - c) / curvature, -0.5), 0.5) if abs(curvature) > 1e-9 else 0.0
        rate[i] = min(max((k + shift) / size, rates[0]), rates[1])
        line[i] = lines[k]
        if k == 0:  # no line where the width allows one: the envelope's phase at the rate, directly
            mean = 0.0
            for t in range(n):
                mean += envelope[i, t]
            mean /= n
            at_rate = 0j
            for t in range(n):
                angle = -TWO_PI * rate[i] * t
                at_rate += (envelope[i, t] - mean) * _cis(angle)
            phase[i] = math.atan2(at_rate.imag, at_rate.real)
        else:
            z = cyclic[i, k]
            phase[i] = math.atan2(z.imag, z.real) + math.pi * (k / size - rate[i]) * (n - 1)
    return rate, line, phase


@_kernel
def band_limited(spectrum: np.ndarray, rate: np.ndarray, upsample: int) -> np.ndarray:
    """`_read_symbols` before its inverse FFT: the spectrum low-passed to 0.75 x the rate, zero-padded to
    `upsample` times its length (complex64 [B, upsample n])."""
    b, n = spectrum.shape
    out = np.zeros((b, n * upsample), dtype=np.complex64)
    for i in range(b):
        cutoff = np.float32(0.75) * rate[i] + np.float32(1 / n)
        for j in range(n // 2):
            if abs(np.float32(_frequency(j, n))) <= cutoff:
                out[i, j] = spectrum[i, j]
        for j in range(n - n // 2, n):
            if abs(np.float32(_frequency(j, n))) <= cutoff:
                out[i, n * upsample - (n - j)] = spectrum[i, j]
    return out


@_kernel
def read_symbols(fine: np.ndarray, rate: np.ndarray, phase: np.ndarray, n: int, upsample: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`_read_symbols` after its inverse FFT `fine` (not yet scaled by `upsample`): instants (float32
    [B, n/2]), symbols at unit power over the valid ones (complex64) and which are inside the frame."""
    b = fine.shape[0]
    m = n // 2
    at = np.empty((b, m), dtype=np.float32)
    symbols = np.zeros((b, m), dtype=np.complex64)
    valid = np.zeros((b, m), dtype=np.bool_)
    values = np.zeros(m, dtype=np.complex128)
    for i in range(b):
        r = np.float32(rate[i])
        period = np.float32(1) / r
        a = -phase[i] / (np.float32(TWO_PI) * r)
        first = a - period * np.floor(a / period) + period
        energy, count = 0.0, 0
        for j in range(m):
            at[i, j] = first + np.float32(j) / r
            valid[i, j] = at[i, j] < n - upsample
            values[j] = 0
            if valid[i, j]:
                position = min(max(at[i, j] * upsample, 0.0), n * upsample - 2)
                left = int(math.floor(position))
                frac = position - left
                values[j] = (complex(fine[i, left]) * (1 - frac) + complex(fine[i, left + 1]) * frac) * upsample
                energy += values[j].real ** 2 + values[j].imag ** 2
                count += 1
        scale = 1 / max(math.sqrt(energy / max(count, 1)), 1e-12)
        for j in range(m):
            symbols[i, j] = values[j] * scale
    return at, symbols, valid


@_kernel
def squared_magnitude(z: np.ndarray) -> np.ndarray:
    """|z|^2 of complex64 values [N] (float32), as `side._power` computes it."""
    out = np.empty(len(z), dtype=np.float32)
    for j in range(len(z)):
        out[j] = z[j].real * z[j].real + z[j].imag * z[j].imag
    return out


@_kernel
def line_powers(x: np.ndarray, count: int) -> np.ndarray:
    """x, x^2, x^4, ... (each the square of the one before) of frames [B, n]: [B, count, n] complex64."""
    b, n = x.shape
    out = np.empty((b, count, n), dtype=np.complex64)
    for i in range(b):
        for j in range(n):
            z = x[i, j]
            for k in range(count):
                out[i, k, j] = z
                z = z * z
    return out


@_kernel
def hand_input(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`_hand`'s frames [B, s] scaled to unit power (complex64) and their centred envelope
    |x| / mean|x| - 1 (float32), whose spectrum is one of the features."""
    b, s = x.shape
    scaled = np.empty((b, s), dtype=np.complex64)
    envelope = np.empty((b, s), dtype=np.float32)
    for i in range(b):
        energy = 0.0
        for j in range(s):
            energy += x[i, j].real ** 2 + x[i, j].imag ** 2
        scale = np.float32(1 / max(math.sqrt(energy / s), 1e-12))
        total = 0.0
        for j in range(s):
            scaled[i, j] = x[i, j] * scale
            envelope[i, j] = math.sqrt(scaled[i, j].real ** 2 + scaled[i, j].imag ** 2)
            total += envelope[i, j]
        mean = max(total / s, 1e-12)
        for j in range(s):
            envelope[i, j] = envelope[i, j] / mean - 1
    return scaled, envelope


@_kernel
def _log(v: float) -> float:
    return math.log10(max(v, 1e-12))


@_statistic
def _peak_over_mean(v: np.ndarray) -> float:
    peak, total = v[0], 0.0
    for value in v:
        peak = max(peak, value)
        total += value
    return _log(peak / max(total / len(v), 1e-12))


@_statistic
def _moments(v: np.ndarray) -> tuple[float, float]:
    """(population standard deviation, kurtosis) of v."""
    total = 0.0
    for value in v:
        total += value
    mean = total / len(v)
    second = fourth = 0.0
    for value in v:
        c = value - mean
        second += c * c
        fourth += c * c * c * c
    second /= len(v)
    fourth /= len(v)
    return math.sqrt(second), fourth / max(second * second, 1e-12)


@_statistic
def _std(v: np.ndarray) -> float:
    return _moments(v)[0]


@_kernel
def _unwrap_float32(peaks: np.ndarray, bin_angle: np.float32, out: np.ndarray) -> None:
    """`side._unwrap` of the angles peaks * bin_angle, in float32 as torch computes it: the angles are
    multiples of one step, so steps of exactly pi are common and the float32 rounding decides them."""
    pi, two_pi = np.float32(math.pi), np.float32(TWO_PI)
    correction = 0.0
    previous = np.float32(peaks[0]) * bin_angle
    out[0] = previous
    for w in range(1, len(peaks)):
        angle = np.float32(peaks[w]) * bin_angle
        step = angle - previous
        shifted = step + pi
        wrapped = np.fmod(shifted, two_pi)
        if wrapped != 0 and wrapped < 0:
            wrapped += two_pi
        wrapped -= pi
        if wrapped == -pi and step > 0:
            wrapped = pi
        if not abs(step) < pi:
            correction += wrapped - step
        out[w] = angle + np.float32(correction)
        previous = angle


@_summing_kernel
def _hand_moments(x: np.ndarray, amplitude: np.ndarray, steps: np.ndarray) -> tuple:
    """The sums `_cumulants` takes the means of (x^2, |x|^2, x^4, x^2 |x|^2, |x|^4, x^6, |x|^6) for one
    frame x [s], in real arithmetic so that the loop vectorises; |x| into `amplitude`, x_t conj(x_{t-1})
    into `steps` [2, s - 1]; and the sum of those steps at unit magnitude."""
    s = len(x)
    m20r = m20i = m21 = m40r = m40i = m41r = m41i = m42 = m60r = m60i = m63 = 0.0
    for j in range(s):
        a, b = np.float64(x[j].real), np.float64(x[j].imag)
        zr, zi, p = a * a - b * b, 2 * a * b, a * a + b * b
        z4r, z4i = zr * zr - zi * zi, 2 * zr * zi
        m20r += zr
        m20i += zi
        m21 += p
        m40r += z4r
        m40i += z4i
        m41r += zr * p
        m41i += zi * p
        m42 += p * p
        m60r += z4r * zr - z4i * zi
        m60i += z4r * zi + z4i * zr
        m63 += p * p * p
        amplitude[j] = math.sqrt(p)
    turn_r = turn_i = 0.0
    for j in range(1, s):
        a, b = np.float64(x[j].real), np.float64(x[j].imag)
        c, d = np.float64(x[j - 1].real), np.float64(x[j - 1].imag)
        step_r, step_i = a * c + b * d, b * c - a * d
        steps[0, j - 1], steps[1, j - 1] = step_r, step_i
        norm = max(math.sqrt(step_r * step_r + step_i * step_i), 1e-12)
        turn_r += step_r / norm
        turn_i += step_i / norm
    return (complex(m20r, m20i), m21, complex(m40r, m40i), complex(m41r, m41i), m42, complex(m60r, m60i), m63,
            complex(turn_r, turn_i))


@_kernel
def hand_statistics(x: np.ndarray, envelope: np.ndarray, spectra: np.ndarray, ordered: np.ndarray,
                    envelope_power: np.ndarray, stft: np.ndarray, smoothing: int) -> np.ndarray:
    """`_hand` once the FFTs are taken: x [B, s] at unit power, its centred envelope, the power spectra of
    its line powers [B, 4, s] (`ordered`: the first sorted, ascending), of the envelope [B, s], and its
    short-time power spectra [B, windows, size]. [B, 27] float32."""
    b, s = x.shape
    windows, size = stft.shape[1], stft.shape[2]
    out = np.empty((b, 27), dtype=np.float32)
    amplitude = np.empty(s, dtype=np.float64)
    freq = np.empty(s - 1, dtype=np.float64)
    steps = np.empty((2, s - 1), dtype=np.float64)
    freq_step = np.empty(s - 2, dtype=np.float64)
    smooth = np.empty(s, dtype=np.float32)
    window_power = np.empty(windows, dtype=np.float64)
    occupied = np.empty(windows, dtype=np.float64)
    share = np.empty(windows, dtype=np.float64)
    peaks = np.empty(windows, dtype=np.int64)
    track = np.empty(windows, dtype=np.float32)
    for i in range(b):
        m20, m21, m40, m41, m42, m60, m63, turn = _hand_moments(x[i], amplitude, steps)
        for j in range(s - 1):  # a pass of its own: it vectorises
            freq[j] = _atan2(steps[1, j], steps[0, j]) / TWO_PI
        m20, m21, m40, m41, m42, m60, m63 = m20 / s, m21 / s, m40 / s, m41 / s, m42 / s, m60 / s, m63 / s
        m20_2, m21_2, m20_power = m20 * m20, m21 * m21, m20.real * m20.real + m20.imag * m20.imag  # products: complex ** is a libm call
        cumulants = (abs(m20), abs(m40 - 3 * m20_2), abs(m41 - 3 * m20 * m21),
                     abs(m42 - m20_power - 2 * m21_2), abs(m60 - 15 * m40 * m20 + 30 * m20_2 * m20),
                     abs(m63 - 6 * m41 * m20.conjugate() - 9 * m42 * m21 + 18 * m20_power * m21 + 12 * m21_2 * m21))
        for k in range(6):
            out[i, k] = _log(cumulants[k])
        for k in range(4):
            out[i, 6 + k] = _peak_over_mean(spectra[i, k])
        out[i, 10] = _std(envelope[i])
        out[i, 11] = _log(_moments(amplitude)[1])
        out[i, 12] = _peak_over_mean(envelope_power[i])
        spread, kurtosis = _moments(freq)
        out[i, 13] = spread
        out[i, 14] = _log(kurtosis)
        for j in range(s - 2):
            freq_step[j] = freq[j + 1] - freq[j]
        out[i, 15] = _std(freq_step)
        out[i, 16] = abs(turn / (s - 1))
        psd = spectra[i, 0]
        half = smoothing // 2
        total = window = 0.0
        for k in range(-half, half + 1):  # the circular window around bin 0
            window += psd[k % s]
        for j in range(s):
            smooth[j] = window / smoothing
            add, drop = j + half + 1, j - half  # circularly
            window += psd[add - s if add >= s else add] - psd[drop + s if drop < 0 else drop]
            total += psd[j]
        reached, running = 0, 0.0
        for j in range(s):
            running += ordered[i, s - 1 - j]
            if np.float32(running) >= np.float32(0.99) * np.float32(total):
                reached = j
                break
        out[i, 17] = reached / s
        top = smooth.max()
        out[i, 18] = (smooth > np.float32(0.1) * top).mean()
        logs = 0.0
        for j in range(s):
            logs += math.log(smooth[j] + 1e-12)
        out[i, 19] = math.exp(logs / s) / max(smooth.mean(), 1e-12)
        out[i, 20] = _peak_over_mean(smooth)
        for w in range(windows):
            total = 0.0
            for k in range(size):
                total += stft[i, w, k]
            window_power[w] = total
            peaks[w] = np.argmax(stft[i, w])
            peak = stft[i, w, peaks[w]]
            share[w] = peak / max(total, 1e-12)
            above = 0
            for k in range(size):
                above += stft[i, w, k] > np.float32(0.1) * peak
            occupied[w] = above / size
        _unwrap_float32(peaks, np.float32(TWO_PI / size), track)
        changes = 0
        for w in range(1, windows):
            changes += peaks[w] != peaks[w - 1]
        out[i, 21] = _std(window_power) / max(window_power.mean(), 1e-12)
        out[i, 22] = _log(window_power.max() / max(window_power.min(), 1e-12))
        out[i, 23] = _std(track)
        out[i, 24] = share.mean()
        out[i, 25] = changes / (windows - 1)
        out[i, 26] = _std(occupied)
    return out
