"""Side features: a few classical statistics of the raw frame that a head reads beside its exit.

The trunk's exits and the classical statistics are complementary (docs/research.md, "Session 11"):
on modulation the strongest line of |FFT(x^k)|^2 for k = 1, 2, 4, 8 (a carrier, symbol-rate or
phase-power line) adds about 6 points to the trunk's exit 4, and on beam the label is the best DFT
beam, an argmax a head learns only approximately. Both cost a few FFTs per frame, computed in torch on
the engine's device, once per batch for the rows that need them. The 27 hand features add under a
point more than the lines at six times their CPU time, so the shipped heads read the lines
(docs/research.md, "Session 12"), except modulation's from exit 3, which read `symbols`: 3 points
more, at about a trunk block's time per frame (docs/research.md, "Session 15"), and interference's from
exit 4, which read `cancel`: 9 points more, at about 1.8 blocks' time (docs/research.md, "Sessions 16-17").
On the CPU these costs are op counts more than FLOPs: a few torch kernels that are slow on short rows
are replaced (`_argmax`, `_angle`, `_abs`, `_std`, `_turn`), and `side_features_of` serves several
kinds in one call, sharing the blind receiver.

- `lines`: log10 of the peak over the mean bin of |FFT(x^k)|^2, k = 1, 2, 4, 8 ([B, 4]).
- `hand`: the classical baselines' 27 hand features (xapp.train.baselines.features, which is the
  float64 numpy reference): cumulants, the lines, envelope and instantaneous-frequency statistics,
  bandwidths and spectral shape, short-time (burst, hop, sweep) statistics ([B, 27]), on the frame
  scaled to unit power.
- `symbols`: the lines, beside what the frame's symbols say when recovered blind (a classical
  receiver: carrier from the x^4 line, symbol rate from the strongest line of |x|^2's spectrum within
  what the occupied width allows, timing from that line's phase, phase tracked by the fourth power over
  a sliding window) and fitted to square constellations of 4, 16 and 64 points ([B, 22], single-antenna
  frames). The trunk alone tells QAM16 from QAM64 little better than chance; their fits tell them apart
  (docs/research.md, "Session 15").
- `cancel`: the lines, beside the frame with its strongest signal taken out by the same receiver (the
  symbols decided on the square grid that suits the frame, placed at their instants, fitted to the frame
  and subtracted; for FSK, the constant envelope taken out): the power of both residuals, the hand features of the weaker
  and how the strongest bin of its short-time spectrum and of the frame's moves (a sweep against a hopper) ([B, 53],
  single-antenna frames). An interferer 10-25 dB under the desired signal is buried in the frame and
  stands out in the residual (docs/research.md, "Session 16").
- `impairments`: what a transmitter's hardware leaves on the frame, read where the channel cannot move
  it ([B, 33], single-antenna frames): with the carrier taken from the x^4 line, the frame's mean (LO
  leakage), the mean of its square (IQ imbalance makes a signal improper) and of its fourth power, and
  their channel-free ratios mean^2 / mean(x^2) and mean(x^2)^2 / mean(x^4) (the channel's phase
  cancels in each); the envelope's moments and 99th percentile (PA compression); how the x^4 line's
  phase wanders over 8 and 32 segments of the frame (oscillator phase noise); how the phase about the
  x^4 line moves with amplitude (AM/PM); an SNR estimate (M2M4); and, of the frame with its carrier
  taken out, the hand features' envelope, instantaneous-frequency and bandwidth statistics (phase noise
  and PA spectral regrowth). With the baselines' MLP they alone tell the 8 emitters of the
  `fingerprint` task apart on 88 % of frames (30,000 training frames), where the 27 hand features reach
  65-69 % (docs/research.md, "Session 27").
- `spatial`: how the frame's energy spreads over directions, which separates one dominant
  (line-of-sight) path from many: the log10 eigenvalues of the array's spatial covariance (trace one),
  its coherence per antenna lag (the mean magnitude of each off-diagonal), and the log10 DFT beam energy
  shares sorted from the strongest ([B, 3 A - 1], A antennas; 47 for a 16-antenna array). Direction
  itself is left out: rotating the wavefront leaves them where they were. With the baselines' MLP they
  alone tell `los` frames apart on 80 % of frames (docs/research.md, "Session 28").
- `beams`: log10 of each DFT beam's share of the frame's energy, beam b pointing at u = (b - 8) / 8,
  the order of the `beam` task's classes ([B, 16] for a 16-antenna array). A head with this side input
  adds a learned multiple of it to its logits, so the DFT's argmax is one of the rules it can express.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from xapp.model.patch import normalise_power

log = logging.getLogger(__name__)

SIDE_KINDS = ("lines", "hand", "symbols", "cancel", "impairments", "spatial", "beams")
ARRAY = ("spatial", "beams")  # kinds read from antenna arrays only
SINGLE_ANTENNA = ("symbols", "cancel", "impairments")  # kinds read from single-antenna frames only
RECEIVING = ("symbols", "cancel")  # kinds that read the blind receiver (`_receive`)
LINE_POWERS = (1, 2, 4, 8)  # successive squares
HAND_FEATURES = 27
STFT_SIZE = 64
SMOOTHING_BINS = 9
FLOOR = 1e-12
SAFE_PEAKS = (0.5, 32.0)  # frames whose largest sample is outside are scaled to unit power first (see _tamed)
# `symbols`: blind symbol recovery (see _symbols)
SYMBOL_FEATURES = 18
SYMBOL_PAD = 4  # the x^4 and |x|^2 lines (carrier and rate) are read off FFTs zero-padded to this many times the frame
SYMBOL_RATES = (1 / 17, 1 / 2)  # symbol rates searched, cycles/sample
UPSAMPLE = 4  # band-limited interpolation before symbols are read between samples
TRACK_SYMBOLS = 33  # the phase tracker's window
LINE_GAP, LINE_FLANK = 8, 17  # a line is compared with the LINE_FLANK bins each side, LINE_GAP bins away
FIT_GAINS = (0.8, 0.9, 1.0)  # symbol amplitude / constellation amplitude (noise adds power)
FIT_GRIDS = (2, 4, 8)  # square constellations of 4, 16 and 64 points
DENSER_SHARE = (0.5, 0.35)  # `cancel` decides on 16 (64) points only where their error is under this share of 4's (16's)
AMPLITUDE_BINS, AMPLITUDE_TOP = 8, 1.6  # histogram of the unit-power symbols' amplitudes over [0, AMPLITUDE_TOP)
# `cancel`: the frame less its strongest signal (see _cancel)
TRACK_WINDOWS = (16, 32)  # `cancel`: short-time spectra whose strongest bin is followed (see _peak_track)
TRACK_FEATURES = 5
CANCEL_FEATURES = 2 + HAND_FEATURES + 2 * len(TRACK_WINDOWS) * TRACK_FEATURES
GAIN_SYMBOLS = 33  # the sliding complex gain's window
IMPULSE_GRID = 4  # the symbol impulses are placed on a grid this many times finer than the samples
# pulse and channel span about this many symbols: their response is smoothed over n rate / this many bins
PULSE_SYMBOLS = 8
# `impairments` (see _impairments)
IMPAIRMENT_FEATURES = 33
IMPAIRMENT_SEGMENTS = (8, 32)  # the x^4 line's phase is read over this many segments of the frame
ENVELOPE_PERCENTILE = 0.99


class SideFeatureError(ValueError):
    """Side features asked of an unknown kind, or of frames they do not fit."""


_GRIDS, _GAINS, _SHARES = np.array(FIT_GRIDS), np.array(FIT_GAINS), np.array(DENSER_SHARE)
COMPILED = True  # CPU tensors take the compiled kernels of xapp.model.side_cpu; False: torch everywhere (the reference)


def _compiled(t: torch.Tensor) -> bool:
    return COMPILED and t.device.type == "cpu" and _kernels() is not None


@functools.cache
def _kernels():
    """xapp.model.side_cpu, imported on first use (numba takes a third of a second to import, which
    commands that compute no side features need not pay); None where numba is missing (an image that
    cannot install it), and the torch path serves, 2-4x slower on a CPU."""
    try:
        from xapp.model import side_cpu
    except ImportError as exc:
        log.warning("side features in torch: their compiled CPU kernels need numba", extra={"error": str(exc)})
        return None
    return side_cpu


@functools.cache
def compile_kernels() -> None:
    """Compile the CPU kernels (or load them from numba's cache) now, once per process, by computing
    every kind on one frame: the serving path calls this before it reports ready, so that no batch
    waits for a compile."""
    frame = torch.ones(1, 1, 1024, dtype=torch.complex64)
    with torch.inference_mode():
        side_features_of([("symbols", frame), ("cancel", frame), ("hand", frame), ("lines", frame)])


def side_width(kind: str, frame_shape: Sequence[int]) -> int:
    """Features per frame of `kind` on frames of `frame_shape` (antennas, samples)."""
    _check(kind, frame_shape)
    widths = {"lines": len(LINE_POWERS), "hand": HAND_FEATURES, "symbols": len(LINE_POWERS) + SYMBOL_FEATURES,
              "cancel": len(LINE_POWERS) + CANCEL_FEATURES, "impairments": IMPAIRMENT_FEATURES,
              "spatial": 3 * int(frame_shape[0]) - 1}
    return widths.get(kind) or int(frame_shape[0])


def class_aligned(kind: str) -> bool:
    """Whether feature i scores class i (true of `beams`: one feature per DFT beam, in class order)."""
    return kind == "beams"


def side_features(kind: str, frames: torch.Tensor) -> torch.Tensor:
    """Float32 [B, width] features of complex frames [B, antennas, samples]."""
    return side_features_of([(kind, frames)])[0]


def side_features_of(wanted: Sequence[tuple[str, torch.Tensor]]) -> list[torch.Tensor]:
    """`side_features(kind, frames)` of each pair, in order. The pairs whose kind reads the blind receiver
    (`symbols`, `cancel`) go through it in one pass per frame shape: a call costs its op count more than
    its FLOPs at online batch sizes, so the engine asks for every task's side features at once."""
    out: list[torch.Tensor | None] = [None] * len(wanted)
    receiving: dict[tuple[int, ...], list[int]] = {}
    for i, (kind, frames) in enumerate(wanted):
        _check(kind, frames.shape[1:])
        if kind in RECEIVING:
            receiving.setdefault(tuple(frames.shape[1:]), []).append(i)
        else:
            out[i] = _features(kind, _tamed(frames.to(torch.complex64)))
    for group in receiving.values():
        parts = [wanted[i] for i in group]
        for i, features in zip(group, _received_features(parts)):
            out[i] = features
    return out


def _features(kind: str, x: torch.Tensor) -> torch.Tensor:
    if kind == "lines":
        return _lines(_power_spectra(x.reshape(len(x), -1)))
    if kind == "hand":
        return _hand(x.reshape(len(x), -1))
    if kind == "impairments":
        return _impairments(x.reshape(len(x), -1))
    if kind == "spatial":
        return _spatial(x)
    return _log(_beam_shares(x))


def _beam_shares(x: torch.Tensor) -> torch.Tensor:
    """Each DFT beam's share of the energy of array frames x [B, antennas, samples]; beam b points at
    u = (b - 8) / 8 for 16 antennas."""
    energy = _power(torch.fft.fftshift(torch.fft.fft(x, dim=1), dim=1)).sum(dim=2)
    return energy / energy.sum(dim=1, keepdim=True).clamp_min(FLOOR)


def _spatial(x: torch.Tensor) -> torch.Tensor:
    """The `spatial` features of array frames x [B, antennas, samples] (module docstring). The covariance
    is taken in double precision: its smallest eigenvalues, the noise floor of a strong frame, sit near
    float32's resolution of the largest."""
    antennas, samples = x.shape[1], x.shape[2]
    wide = x.to(torch.complex128)
    covariance = wide @ wide.transpose(1, 2).conj() / samples
    trace = torch.diagonal(covariance, dim1=1, dim2=2).real.sum(dim=1)
    covariance = covariance / trace.clamp_min(FLOOR)[:, None, None]
    eigenvalues = torch.linalg.eigvalsh(covariance).flip(1)
    coherence = torch.stack([torch.diagonal(covariance, offset=lag, dim1=1, dim2=2).mean(dim=1).abs()
                             for lag in range(1, antennas)], dim=1)
    shares = _beam_shares(x).sort(dim=1, descending=True).values
    return torch.cat([_log(eigenvalues).float(), coherence.float(), _log(shares)], dim=1)


def _received_features(parts: Sequence[tuple[str, torch.Tensor]]) -> list[torch.Tensor]:
    """`symbols` or `cancel` features of each (kind, single-antenna frames) part, one receiver pass for all."""
    x = torch.cat([frames for _, frames in parts]) if len(parts) > 1 else parts[0][1]
    x = _tamed(x.to(torch.complex64)).reshape(len(x), -1)
    spectra = _power_spectra(x)
    lines, received = _lines(spectra), _receive(x, spectra[:, 0])
    out, start = [], 0
    for kind, frames in parts:
        rows = slice(start, start + len(frames))
        mine = _Received(*(field[rows] for field in received))
        out.append(torch.cat([lines[rows], _symbols(mine) if kind == "symbols" else _cancel(mine)], dim=1))
        start += len(frames)
    return out


def _tamed(x: torch.Tensor) -> torch.Tensor:
    """Frames [B, antennas, samples] whose largest sample is outside SAFE_PEAKS scaled to unit power, the
    others as they are. Every kind is scale-free, but x^8 and its power spectrum overflow float32 from
    a peak of ~100 (one loud frame then made the receiver index out of range and failed its batch) and
    underflow under ~0.01; a unit-power frame of n samples peaks between 1 and sqrt(n)."""
    peak = _power(x).flatten(1).amax(dim=1).sqrt()
    odd = ((peak > SAFE_PEAKS[1]) | (peak < SAFE_PEAKS[0])) & (peak > 0)
    if bool(odd.any()):
        x = x.clone()
        x[odd] = normalise_power(x[odd])
    return x


def head_reads(kind: str | None) -> str:
    """What a head reads, as the report and `xapp exits` show it: `tokens`, or `tokens + <kind>`."""
    return "tokens" if kind is None else f"tokens + {kind}"


def _log(v: torch.Tensor) -> torch.Tensor:
    return v.clamp_min(FLOOR).log10()


def _peak_over_mean(power: torch.Tensor) -> torch.Tensor:
    return _log(power.amax(dim=-1) / power.mean(dim=-1).clamp_min(FLOOR))


def _power_spectra(x: torch.Tensor) -> torch.Tensor:
    """|FFT(x^k)|^2 for k in LINE_POWERS (x, x^2, x^4, x^8: each the square of the one before), [B, 4, n]:
    one FFT call for the four (op count, not FLOPs, is what side features spend their time on)."""
    if _compiled(x):
        return _power(torch.fft.fft(torch.from_numpy(_kernels().line_powers(x.contiguous().numpy(), len(LINE_POWERS))), dim=2))
    powers = [x]
    for _ in LINE_POWERS[1:]:
        powers.append(powers[-1] * powers[-1])
    return _power(torch.fft.fft(torch.stack(powers, dim=1), dim=2))


def _lines(spectra: torch.Tensor) -> torch.Tensor:
    return _peak_over_mean(spectra)


def _kurtosis(v: torch.Tensor) -> torch.Tensor:
    c = v - v.mean(dim=1, keepdim=True)
    squared = c.square()
    return squared.square().mean(dim=1) / squared.mean(dim=1).square().clamp_min(FLOOR)


def _cumulants(x: torch.Tensor) -> torch.Tensor:
    """|C20|, |C40|, |C41|, |C42|, |C60|, |C63| (zero-mean formulas), as the numpy reference."""
    x2, power = x * x, _power(x)
    m20, m21 = x2.mean(dim=1), power.mean(dim=1).to(x.dtype)
    m40, m41, m42 = (x2 * x2).mean(dim=1), (x2 * power).mean(dim=1), power.square().mean(dim=1).to(x.dtype)
    m60, m63 = (x2 * x2 * x2).mean(dim=1), (power.square() * power).mean(dim=1).to(x.dtype)
    c40 = m40 - 3 * m20**2
    c41 = m41 - 3 * m20 * m21
    c42 = m42 - m20.abs().square() - 2 * m21**2
    c60 = m60 - 15 * m40 * m20 + 30 * m20**3
    c63 = m63 - 6 * m41 * m20.conj() - 9 * m42 * m21 + 18 * m20.abs().square() * m21 + 12 * m21**3
    return torch.stack([m20, c40, c41, c42, c60, c63], dim=1).abs()


def _hand(x: torch.Tensor) -> torch.Tensor:
    n, s = x.shape
    if _compiled(x):
        scaled, envelope = map(torch.from_numpy, _kernels().hand_input(x.contiguous().numpy()))
        frames = s // STFT_SIZE
        stft = _power(torch.fft.fft(scaled[:, : frames * STFT_SIZE].reshape(n, frames, STFT_SIZE), dim=2))
        spectra = _power_spectra(scaled).numpy()
        return torch.from_numpy(_kernels().hand_statistics(
            scaled.numpy(), envelope.numpy(), spectra, np.sort(spectra[:, 0], axis=1),
            _power(torch.fft.fft(envelope, dim=1)).numpy(), stft.numpy(), SMOOTHING_BINS))
    x = x / _power(x).mean(dim=1, keepdim=True).sqrt().clamp_min(FLOOR)
    spectra = _power_spectra(x)
    out = [_log(_cumulants(x)), _lines(spectra), _envelope_and_frequency(x), _bandwidths(spectra[:, 0])]

    frames = s // STFT_SIZE
    stft = _power(torch.fft.fft(x[:, : frames * STFT_SIZE].reshape(n, frames, STFT_SIZE), dim=2))
    power = stft.sum(dim=2)
    peak_energy, peak = stft.amax(dim=2), _argmax(stft, dim=2)
    share = peak_energy / power.clamp_min(FLOOR)
    occupied = (stft > 0.1 * peak_energy[..., None]).float().mean(dim=2)
    track = _unwrap(peak.float() * (2 * math.pi / STFT_SIZE))
    out.append(torch.stack([
        _std(power) / power.mean(dim=1).clamp_min(FLOOR),
        _log(power.amax(dim=1) / power.amin(dim=1).clamp_min(FLOOR)),
        _std(track), share.mean(dim=1), (peak.diff(dim=1) != 0).float().mean(dim=1),
        _std(occupied),
    ], dim=1))
    return torch.cat(out, dim=1)


def _impairments(x: torch.Tensor) -> torch.Tensor:
    """The `impairments` features of single-antenna frames x [B, n] (module docstring)."""
    n = x.shape[1]
    x = x / _power(x).mean(dim=1, keepdim=True).sqrt().clamp_min(FLOOR)
    fourth = _fourth_power(x)
    size = SYMBOL_PAD * n
    line = torch.fft.fftfreq(size, device=x.device)[_argmax(_power(torch.fft.fft(fourth, n=size, dim=1)))]
    turn = _turn(-0.5 * math.pi * line[:, None] * torch.arange(n, dtype=torch.float32, device=x.device))
    z = x * turn  # the carrier, a quarter of the x^4 line's frequency, taken out
    squared = z * z
    fourth = squared * squared
    m1, m2, m4 = z.mean(dim=1), squared.mean(dim=1), fourth.mean(dim=1)
    dc_over_image = m1 * m1 / (m2 + FLOOR)
    image_over_line = m2 * m2 / (m4 + FLOOR)
    envelope = _power(z)
    k4, k6 = envelope.square().mean(dim=1), (envelope.square() * envelope).mean(dim=1)
    peak = _kth_smallest(envelope, int(ENVELOPE_PERCENTILE * n))[:, 0]
    line_by_segment = {s: fourth[:, : n - n % s].reshape(len(z), s, -1).mean(dim=2) for s in IMPAIRMENT_SEGMENTS}
    wander = []
    for parts in line_by_segment.values():
        steps = _angle(parts[:, 1:] * parts[:, :-1].conj())
        wander.append(_std(steps))
        wander.append(steps.abs().mean(dim=1))
    finest = line_by_segment[max(IMPAIRMENT_SEGMENTS)]  # how much of the line survives the segments' sum
    coherence = _abs(finest.mean(dim=1)) / _abs(finest).mean(dim=1).clamp_min(FLOOR)
    about_line = _angle(fourth * (m4 / _abs(m4).clamp_min(FLOOR)).conj()[:, None]) / 4
    swing = envelope - envelope.mean(dim=1, keepdim=True)
    am_pm = (swing * about_line).mean(dim=1) / swing.abs().mean(dim=1).clamp_min(FLOOR)
    am_pm_correlation = (swing * (4 * about_line).sin()).mean(dim=1)
    signal = (2 - k4).clamp_min(1e-6).sqrt()  # M2M4 for a constant-modulus signal: the signal's share of the power
    snr = (signal / (1 - signal).clamp_min(1e-3)).clamp(1e-3, 1e4).log10()
    a1, a2, a4 = _abs(m1), _abs(m2), _abs(m4)
    ratios = [(r, _abs(r)) for r in (dc_over_image, image_over_line)]
    read_here = torch.stack([
        a1, a2, a4,
        *[v for r, size_ in ratios for v in (size_.clamp_min(FLOOR).log(), r.real / size_.clamp_min(FLOOR),
                                              r.imag / size_.clamp_min(FLOOR))],
        k4, k6, peak, coherence, wander[0], wander[1], wander[2], wander[3],
        am_pm, am_pm_correlation, snr, a1 / a2.clamp_min(FLOOR), line.abs() * 0.25,
    ], dim=1)
    return torch.cat([read_here, _envelope_and_frequency(z), _bandwidths(_power(torch.fft.fft(z, dim=1)))], dim=1).float()


def _envelope_and_frequency(x: torch.Tensor) -> torch.Tensor:
    """[B, 7] of unit-power frames [B, n]: the envelope's spread, kurtosis and strongest line; the
    instantaneous frequency's spread, kurtosis and step spread; how steadily the phase turns."""
    amp = _abs(x)
    amp_c = amp / amp.mean(dim=1, keepdim=True).clamp_min(FLOOR) - 1
    step = x[:, 1:] * x[:, :-1].conj()
    freq = _angle(step) / (2 * math.pi)
    turn = step / _abs(step).clamp_min(FLOOR)  # exp(2j pi freq)
    return torch.stack([
        _std(amp_c), _log(_kurtosis(amp)), _peak_over_mean(_power(torch.fft.fft(amp_c, dim=1))),
        _std(freq), _log(_kurtosis(freq)), _std(freq.diff(dim=1)), _abs(turn.mean(dim=1)),
    ], dim=1)


def _bandwidths(psd: torch.Tensor) -> torch.Tensor:
    """[B, 4] of power spectra [B, n]: the share of bins holding 99 % of the energy, the share within
    10 dB of the (smoothed) peak, spectral flatness and peakiness."""
    half = SMOOTHING_BINS // 2
    smooth = sum(torch.roll(psd, shift, dims=1) for shift in range(-half, half + 1)) / SMOOTHING_BINS
    ordered = _sorted(psd).flip(dims=(1,))
    reached = ordered.cumsum(dim=1) >= 0.99 * psd.sum(dim=1, keepdim=True)
    bw99 = _argmax(reached.float()) / psd.shape[1]  # the first bin that reaches 99 % of the energy
    top = smooth.amax(dim=1, keepdim=True)
    bw10 = (smooth > 0.1 * top).float().mean(dim=1)
    flatness = (smooth + FLOOR).log().mean(dim=1).exp() / smooth.mean(dim=1).clamp_min(FLOOR)
    return torch.stack([bw99, bw10, flatness, _peak_over_mean(smooth)], dim=1)


def _sorted(v: torch.Tensor) -> torch.Tensor:
    """v sorted along dim 1, ascending (on the CPU by numpy: torch's CPU sort is 15x slower on rows this short)."""
    if v.device.type == "cpu":
        return torch.from_numpy(np.sort(v.numpy(), axis=1))
    return v.sort(dim=1).values


def _kth_smallest(v: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th smallest value of each row of v [B, n], as [B, 1] (numpy's partition on the CPU)."""
    if v.device.type == "cpu":
        return torch.from_numpy(np.partition(v.numpy(), k - 1, axis=1)[:, k - 1 : k].copy())
    return v.kthvalue(k, dim=1, keepdim=True).values


def _moving_mean(v: torch.Tensor, width: int) -> torch.Tensor:
    """Mean over a centred window of `width` (odd) along dim 1, the window cut at the ends."""
    half = width // 2
    total = torch.nn.functional.pad(v, (half + 1, half)).cumsum(dim=1)
    count = torch.nn.functional.pad(torch.ones(v.shape[1], device=v.device), (half + 1, half)).cumsum(dim=0)
    return (total[:, width:] - total[:, :-width]) / (count[width:] - count[:-width])


class _Received(NamedTuple):
    """What the blind receiver recovers of single-antenna frames [B, n]."""
    frame: torch.Tensor  # the frame less its mean, at unit power, its carrier removed [B, n]
    turn: torch.Tensor  # exp(-2j pi carrier t), what removed the carrier [B, n]: the frame's mean went along it
    spectrum: torch.Tensor  # FFT of `frame`
    rate: torch.Tensor  # symbol rate, cycles/sample [B]
    line: torch.Tensor  # the rate line's strength over its flanks [B]
    at: torch.Tensor  # where each symbol was read, in samples [B, n/2]
    symbols: torch.Tensor  # the symbols read there, unit power over the valid ones [B, n/2]
    valid: torch.Tensor  # which symbols lie inside the frame [B, n/2]


def _receive(x: torch.Tensor, psd: torch.Tensor) -> _Received:
    """A blind classical receiver: carrier from the x^4 line, symbol rate from the strongest line of
    |x|^2's spectrum within what the occupied width allows, timing from that line's phase. `psd`:
    |FFT(x)|^2, as the lines computed it."""
    n = x.shape[1]
    freq = torch.fft.fftfreq(n, device=x.device)
    t = torch.arange(n, dtype=torch.float32, device=x.device)
    x, width, coarse = _occupied(x, psd)
    turn = _turn(-2 * math.pi * _carrier(x, coarse)[:, None] * t)
    x = x * turn
    spectrum = torch.fft.fft(x, dim=1)
    in_band = torch.fft.ifft(spectrum * (freq.abs() <= (0.6 * width + 2 / n)[:, None]), dim=1)
    rate, line, phase = _symbol_rate(in_band, width)
    at, symbols, valid = _read_symbols(spectrum, rate, phase, freq)
    return _Received(x, turn, spectrum, rate, line, at, symbols, valid)


def _occupied(x: torch.Tensor, psd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Frames [B, n] less their mean at unit power, their occupied width (the share of the band over 3x
    the floor and 5 % of the peak of the smoothed `psd`; a shift does not change it) and a coarse carrier
    (the centre of mass of the smoothed spectrum above its floor), [B] each."""
    n = x.shape[1]
    floor_rank = max(1, n // 10)  # most frames leave a tenth of the band to noise
    if _compiled(x):
        power = _kernels().smoothed(psd.numpy(), SMOOTHING_BINS)
        floor = np.partition(power, floor_rank - 1, axis=1)[:, floor_rank - 1]
        return tuple(map(torch.from_numpy, _kernels().occupied(x.numpy(), power, floor)))
    psd = psd.clone()
    psd[:, 0] = 0  # as of the frame less its mean (a DC offset is not the signal); the scale does not matter
    power = _moving_mean(psd, SMOOTHING_BINS)
    floor = _kth_smallest(power, floor_rank)
    width = (power > torch.maximum(3 * floor, 0.05 * power.amax(dim=1, keepdim=True))).float().mean(dim=1)
    x = x - x.mean(dim=1, keepdim=True)
    x = x / _power(x).mean(dim=1, keepdim=True).sqrt().clamp_min(FLOOR)
    above = (power - floor).clamp_min(0)
    coarse = (above * torch.fft.fftfreq(n, device=x.device)).sum(dim=1) / above.sum(dim=1).clamp_min(FLOOR)
    return x, width, coarse


def _negated_fourth(symbols: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """-s^4 of the valid symbols (0 elsewhere): a square constellation's E s^4 is negative real."""
    return -_fourth_power(symbols) * valid


def _track_phase(fourth: torch.Tensor) -> torch.Tensor:
    """The symbols' carrier phase [B, m], tracked by their `_negated_fourth` over TRACK_SYMBOLS symbols."""
    return _unwrap(_angle(_moving_mean(fourth, TRACK_SYMBOLS))) / 4


def _symbols(received: _Received) -> torch.Tensor:
    """Statistics of the symbols of single-antenna frames, recovered blind ([B, 18]): the log mean
    squared distance to the nearest point of square constellations of 4, 16 and 64 points (best over
    FIT_GAINS), of the phase-tracked symbols and of the symbols under one phase for the frame; E|s|^4 and
    |E s^4| of the tracked symbols; log of the symbol-rate line's strength and of the rate; the histogram
    of the symbols' amplitudes (AMPLITUDE_BINS shares)."""
    symbols, valid, rate = received.symbols, received.valid, received.rate
    if _compiled(symbols):
        return torch.from_numpy(_kernels().symbol_statistics(
            symbols.numpy(), valid.numpy(), received.line.numpy(), rate.numpy(), _GRIDS, _GAINS, TRACK_SYMBOLS,
            AMPLITUDE_BINS, AMPLITUDE_TOP))
    fourth = _negated_fourth(symbols, valid)
    tracked = symbols * _turn(-_track_phase(fourth))
    whole = symbols * _turn(-_angle(fourth.sum(dim=1, keepdim=True)) / 4)
    count = valid.sum(dim=1).clamp_min(1)
    mean = lambda v: (v * valid).sum(dim=1) / count  # noqa: E731
    power = _power(tracked)
    amplitude = (power.sqrt() * (AMPLITUDE_BINS / AMPLITUDE_TOP)).long().clamp_max(AMPLITUDE_BINS - 1)
    histogram = torch.zeros(len(symbols), AMPLITUDE_BINS, device=symbols.device).scatter_add_(1, amplitude, valid.float())
    return torch.cat([_grid_fits(torch.stack([tracked, whole], dim=1), valid, count), torch.stack([
        mean(power * power), _abs(mean(_fourth_power(tracked))), _log(received.line), rate.log10()], dim=1),
        histogram / count[:, None]], dim=1)


def _cancel(received: _Received) -> torch.Tensor:
    """What is left of single-antenna frames once their strongest signal is taken out ([B, CANCEL_FEATURES]):
    the log power of two residuals over the frame's middle three quarters (the ends, where symbols are cut,
    are left out), the 27 hand features of the weaker one, and how the strongest bin of its and the frame's
    short-time spectra moves (`_peak_track`). One residual is decision-directed: the
    recovered symbols decided on the square grid that suits the frame (`_nearest_square`, after the
    fourth-power phase tracker), given a sliding complex gain, placed at their instants and fitted to the
    frame by a per-frame response smooth in frequency (pulse and channel), then subtracted. The other
    takes out a constant envelope (FSK and other constant-envelope signals): the frame times
    1 - mean|x| / |x|. An interferer 10-25 dB under a strong desired signal is buried in the frame but
    stands out in the residual (docs/research.md, "Session 16" and "Session 17")."""
    frame, spectrum = received.frame, received.spectrum
    n = frame.shape[1]
    train = _impulse_spectrum(_cancel_weights(received.symbols, received.valid), received.at, n)
    half = (n * received.rate / (2 * PULSE_SYMBOLS)).round().long().clamp(1, n // 4)
    decision_directed = torch.fft.ifft(spectrum - _response(spectrum, train, half) * train, dim=1)
    power, weaker = _weaker_residual(decision_directed, received.turn, frame)
    tracks = [_peak_track(x, size) for x in (weaker, frame) for size in TRACK_WINDOWS]
    return torch.cat([_log(power), _hand(weaker), *tracks], dim=1)


def _cancel_weights(symbols: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """The recovered symbols decided on the grid that suits the frame (after the fourth-power phase
    tracker), given a sliding complex gain, zero where not valid: what `_cancel` places at their instants."""
    if _compiled(symbols):
        return torch.from_numpy(_kernels().cancel_weights(symbols.numpy(), valid.numpy(), _GRIDS, _GAINS, _SHARES,
                                                        TRACK_SYMBOLS, GAIN_SYMBOLS))
    phase = _track_phase(_negated_fourth(symbols, valid))
    decided = _nearest_square(symbols * _turn(-phase), valid) * _turn(phase)
    gain = (_moving_mean(symbols * decided.conj(), GAIN_SYMBOLS)
            / _moving_mean(_power(decided), GAIN_SYMBOLS).clamp_min(FLOOR))
    return decided * gain * valid


def _response(spectrum: torch.Tensor, train: torch.Tensor, half: torch.Tensor) -> torch.Tensor:
    """The per-frame response (pulse and channel) that fits the impulse train to the frame, smooth in
    frequency: both sides' products averaged over 2 half + 1 bins."""
    if _compiled(spectrum):
        return torch.from_numpy(_kernels().fitted_response(spectrum.numpy(), train.numpy(), half.numpy()))
    return _row_moving_mean(spectrum * train.conj(), half) / _row_moving_mean(_power(train), half).clamp_min(FLOOR)


def _weaker_residual(decision_directed: torch.Tensor, turn: torch.Tensor, frame: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean power of `_cancel`'s two residuals over the frame's middle three quarters [B, 2], and the
    weaker of them there [B, middle]."""
    n = frame.shape[1]
    if _compiled(frame):
        power, weaker = _kernels().weaker_residual(decision_directed.numpy(), turn.numpy(), frame.numpy(), n // 8, n - n // 8)
        return torch.from_numpy(power), torch.from_numpy(weaker)
    # The receiver took the frame's mean out (a DC offset is not the signal) before it removed the carrier:
    # the fitted signal's share along that direction is not in the frame, so it is taken out of the
    # residual too (left in, it was the signal's own mean, about samples-per-symbol / n of its power:
    # -18 dB at 17 samples per symbol).
    decision_directed = decision_directed - (decision_directed * turn.conj()).mean(dim=1, keepdim=True) * turn
    amplitude = _abs(frame)
    constant_envelope = frame * (1 - amplitude.mean(dim=1, keepdim=True) / amplitude.clamp_min(FLOOR))
    middle = slice(n // 8, n - n // 8)
    residuals = torch.stack([decision_directed[:, middle], constant_envelope[:, middle]], dim=1)
    power = _power(residuals).mean(dim=2)
    weaker = residuals.gather(1, _argmax(-power)[:, None, None].expand(-1, 1, residuals.shape[2]))[:, 0]
    return power, weaker


def _peak_track(x: torch.Tensor, size: int) -> torch.Tensor:
    """How the strongest bin of x's short-time spectrum (windows of `size` samples, no overlap) moves
    ([B, 5]): the shares of steps where it stays, moves by 1-2 bins and jumps further; the share of steps
    whose move is within a bin of the one before (a sweep keeps its pace, a hopper does not); the mean share
    of a window's power in that bin. The hand features follow it at 64 samples only, where chirps and
    hoppers were taken for each other on 2.6 % of frames (docs/research.md, "Session 17")."""
    n, samples = x.shape
    frames = samples // size
    stft = _power(torch.fft.fft(x[:, : frames * size].reshape(n, frames, size), dim=2))
    if _compiled(stft):
        return torch.from_numpy(_kernels().peak_track(stft.numpy()))
    circular_step = lambda v: torch.remainder(v.diff(dim=1) + size // 2, size) - size // 2  # noqa: E731  (bins wrap)
    move = circular_step(_argmax(stft, dim=2))
    distance = move.abs()
    steady = circular_step(move).abs() <= 1
    share = stft.amax(dim=2) / stft.sum(dim=2).clamp_min(FLOOR)
    return torch.stack([(distance == 0).float().mean(dim=1), ((distance >= 1) & (distance <= 2)).float().mean(dim=1),
                        (distance > 2).float().mean(dim=1), steady.float().mean(dim=1), share.mean(dim=1)], dim=1)


def _nearest_square(s: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Each symbol's nearest point of the square grid of 4, 16 or 64 points (FIT_GRIDS) that suits its
    frame, scaled by the best of FIT_GAINS. A denser grid always lies closer to the symbols, so it is
    taken only where its mean squared error is under DENSER_SHARE of the sparser grid's: BPSK and QPSK
    frames stay on 4 points, PAM4 and QAM16 on 16 (the fourth-power tracker puts BPSK and PAM4 on the
    diagonals, where those grids have their points), QAM64 and 8PSK go to 64. Decided on the right grid,
    the residual of a 40 dB frame is 5-7 dB lower than on the 64-point grid for all of them
    (docs/research.md, "Session 17")."""
    parts = torch.view_as_real(s)
    folded, signs = parts.abs(), parts.sign()
    chosen, chosen_error = None, None
    for i, side in enumerate(FIT_GRIDS):
        best_error, best = None, None
        for gain in FIT_GAINS:
            nearest = _nearest_level(folded, side, gain) * signs
            error = (nearest - parts).square().sum(dim=-1).mul(valid).sum(dim=1)
            if best is None:
                best_error, best = error, nearest
            else:
                better = error < best_error
                best_error, best = torch.where(better, error, best_error), torch.where(better[:, None, None], nearest, best)
        if chosen is None:
            chosen, chosen_error = best, best_error
        else:
            denser = best_error < DENSER_SHARE[i - 1] * chosen_error
            chosen = torch.where(denser[:, None, None], best, chosen)
            chosen_error = torch.where(denser, best_error, chosen_error)
    return torch.view_as_complex(chosen.contiguous())


def _keys(t: torch.Tensor) -> torch.Tensor:
    """Keys' cubic interpolation kernel (a = -1/2), support [-2, 2]."""
    a = t.abs()
    return torch.where(a < 1, (1.5 * a - 2.5) * a * a + 1,
                       torch.where(a < 2, ((-0.5 * a + 2.5) * a - 4) * a + 2, torch.zeros_like(a)))


def _impulse_spectrum(weights: torch.Tensor, at: torch.Tensor, n: int) -> torch.Tensor:
    """The n-point spectrum (FFT order) of impulses of `weights` [B, m] at instants `at` (samples, not
    whole), band-limited to the frame's band: spread onto a grid IMPULSE_GRID times finer with the Keys
    kernel, whose images are far enough out not to fold back."""
    fine = n * IMPULSE_GRID
    if _compiled(weights):
        grid = torch.from_numpy(_kernels().impulse_grid(weights.numpy(), at.numpy(), n, IMPULSE_GRID))
    else:
        position = at * IMPULSE_GRID
        base = position.floor().long()
        grid = torch.zeros(len(weights), fine, dtype=torch.complex64, device=weights.device)
        for offset in (-1, 0, 1, 2):
            grid.scatter_add_(1, torch.remainder(base + offset, fine), weights * _keys(position - (base + offset)))
    spectrum = torch.fft.fft(grid, dim=1)
    return torch.cat([spectrum[:, : n // 2], spectrum[:, fine - (n - n // 2):]], dim=1)


def _row_moving_mean(v: torch.Tensor, half: torch.Tensor) -> torch.Tensor:
    """Circular mean along dim 1 over 2 half + 1 bins, `half` [B] per row."""
    n, widest = v.shape[1], int(half.max())
    total = torch.cat([v[:, n - widest - 1:], v, v[:, :widest]], dim=1).cumsum(dim=1)
    k = torch.arange(n, device=v.device)[None, :] + widest + 1
    return (total.gather(1, k + half[:, None]) - total.gather(1, k - half[:, None] - 1)) / (2 * half[:, None] + 1)


def _fourth_power(z: torch.Tensor) -> torch.Tensor:
    squared = z * z  # complex square() and pow() are several times slower than products
    return squared * squared


def _power(z: torch.Tensor) -> torch.Tensor:
    """|z|^2 of a complex tensor (quicker than abs().square(), which takes a square root first)."""
    if _compiled(z):
        return torch.from_numpy(_kernels().squared_magnitude(z.contiguous().view(-1).numpy())).view(z.shape)
    return z.real.square() + z.imag.square()


def _turn(angle: torch.Tensor) -> torch.Tensor:
    """exp(j angle) of a real tensor (torch.polar's CPU kernel is 5x slower than cos and sin)."""
    return torch.complex(angle.cos(), angle.sin())


def _abs(z: torch.Tensor) -> torch.Tensor:
    """|z| of a complex tensor (torch's complex abs on the CPU is 3x slower than this)."""
    return _power(z).sqrt()


def _angle(z: torch.Tensor) -> torch.Tensor:
    """The angle of a complex tensor (numpy's on the CPU: torch's CPU kernel is 4x slower)."""
    if z.device.type == "cpu":
        return torch.from_numpy(np.angle(z.numpy()))
    return z.angle()


def _argmax(v: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """The first largest value's index along `dim` (numpy's on the CPU: torch's CPU argmax is 25x slower)."""
    if v.device.type == "cpu":
        return torch.from_numpy(v.numpy().argmax(axis=dim))
    return v.argmax(dim=dim)


def _std(v: torch.Tensor) -> torch.Tensor:
    """Population standard deviation along dim 1 (two passes: torch's CPU std is 7x slower)."""
    return (v - v.mean(dim=1, keepdim=True)).square().mean(dim=1).sqrt()


def _carrier(x: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
    """Carrier offset of frames [B, n], cycles/sample: the x^4 line (4x the offset, modulo 1) resolved
    by the `coarse` carrier (`_occupied`)."""
    size = SYMBOL_PAD * x.shape[1]
    fourth = torch.fft.fft(_fourth_power(x), n=size, dim=1)
    if _compiled(fourth):
        return torch.from_numpy(_kernels().carrier(fourth.numpy(), coarse.numpy()))
    fine = torch.fft.fftfreq(size, device=x.device)[_argmax(_power(fourth))]
    candidates = fine[:, None] / 4 + torch.arange(-2, 3, device=x.device)[None, :] / 4
    return candidates.gather(1, _argmax(-(candidates - coarse[:, None]).abs())[:, None])[:, 0]


def _symbol_rate(x: torch.Tensor, width: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(rate, the line's strength over its flanks, its phase) of in-band frames: the strongest line of
    |x|^2 between width/2.4 and width/0.75 (the occupied width of pulses from Gaussian to rectangular),
    moved to half its rate while a line there is strong too (rectangular pulses have harmonics). The
    phase is that of sum_t |x_t|^2 exp(-2j pi rate t), where |x|^2 peaks mid-symbol: read off the line's
    bin, or computed at the rate where no line lies in range (the bin found is then 0, where the
    centred envelope's spectrum is zero but for rounding)."""
    n = x.shape[1]
    envelope = _power(x)
    size = SYMBOL_PAD * n
    cyclic = torch.fft.rfft(envelope - envelope.mean(dim=1, keepdim=True), n=size)
    if _compiled(cyclic):
        return tuple(map(torch.from_numpy, _kernels().symbol_rate(cyclic.numpy(), envelope.numpy(), width.numpy(),
                                                                SYMBOL_RATES, LINE_GAP, LINE_FLANK)))
    spectrum = _power(cyclic)
    lines = spectrum / _flanks(spectrum).clamp_min(FLOOR)
    f = torch.arange(spectrum.shape[1], device=x.device) / size
    low = (width / 2.4).clamp(*SYMBOL_RATES)[:, None]
    high = (width / 0.75).clamp(*SYMBOL_RATES)[:, None]
    k = _argmax(lines.masked_fill((f < low) | (f > high), 0))
    last = spectrum.shape[1] - 1
    for _ in range(2):
        near = ((k // 2)[:, None] + torch.arange(-2, 3, device=x.device)).clamp(0, last)
        at_half = lines.gather(1, near)
        strong = (at_half.amax(dim=1) > torch.clamp(0.25 * lines.gather(1, k[:, None])[:, 0], min=8.0)) \
            & (k // 2 >= SYMBOL_RATES[0] * size)
        k = torch.where(strong, near.gather(1, _argmax(at_half)[:, None])[:, 0], k)
    below, above = [spectrum.gather(1, i[:, None])[:, 0] for i in ((k - 1).clamp_min(0), (k + 1).clamp_max(last))]
    a, b, c = _log(below), _log(spectrum.gather(1, k[:, None])[:, 0]), _log(above)
    curvature = a - 2 * b + c
    shift = torch.where(curvature.abs() > 1e-9, 0.5 * (a - c) / curvature, torch.zeros_like(b)).clamp(-0.5, 0.5)
    rate = ((k + shift) / size).clamp(*SYMBOL_RATES)
    # bin k's phase, moved to the rate: a line at f reads at bin k with the Dirichlet kernel's phase
    phase = _angle(cyclic.gather(1, k[:, None])[:, 0]) + math.pi * (k / size - rate) * (n - 1)
    lineless = k == 0  # no line where the width allows one: bin 0 of the centred envelope is ~0, its angle rounding noise
    if bool(lineless.any()):
        t = torch.arange(n, dtype=torch.float32, device=x.device)
        centred = envelope[lineless]
        centred = centred - centred.mean(dim=1, keepdim=True)
        at_rate = (centred * _turn(-2 * math.pi * rate[lineless, None] * t)).sum(dim=1)
        phase = phase.masked_scatter(lineless, _angle(at_rate))
    return rate, lines.gather(1, k[:, None])[:, 0], phase


def _flanks(spectrum: torch.Tensor) -> torch.Tensor:
    """Mean of the two flanks of each bin (LINE_FLANK bins each side, starting LINE_GAP bins away): a
    line is narrow, so it stands over its flanks, where a broad bump or an edge of the spectrum does not."""
    offset = LINE_GAP + LINE_FLANK // 2
    local = torch.nn.functional.pad(_moving_mean(spectrum, LINE_FLANK), (offset, offset), mode="replicate")
    return (local[:, : -2 * offset] + local[:, 2 * offset:]) / 2


def _read_symbols(spectrum: torch.Tensor, rate: torch.Tensor, phase: torch.Tensor, freq: torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Instants [B, n/2] (samples), symbols of frames (their spectra, carrier removed) read there and which are inside the frame: the
    signal low-passed to 0.75 x the rate, upsampled by UPSAMPLE, read where |x|^2's line at the rate
    (of that phase) peaks, unit power over the valid ones."""
    b, n = spectrum.shape
    if _compiled(spectrum):
        fine = torch.fft.ifft(torch.from_numpy(_kernels().band_limited(spectrum.numpy(), rate.numpy(), UPSAMPLE)), dim=1)
        return tuple(map(torch.from_numpy, _kernels().read_symbols(fine.numpy(), rate.numpy(), phase.numpy(), n, UPSAMPLE)))
    kept = spectrum * (freq.abs() <= (0.75 * rate + 1 / n)[:, None])
    padded = torch.zeros(b, n * UPSAMPLE, dtype=spectrum.dtype, device=spectrum.device)
    padded[:, : n // 2], padded[:, -(n // 2):] = kept[:, : n // 2], kept[:, -(n // 2):]
    fine = torch.fft.ifft(padded, dim=1) * UPSAMPLE
    first = torch.remainder(-phase / (2 * math.pi * rate), 1 / rate) + 1 / rate
    at = first[:, None] + torch.arange(n // 2, device=spectrum.device)[None, :] / rate[:, None]
    valid = at < n - UPSAMPLE
    position = (at * UPSAMPLE).clamp(0, n * UPSAMPLE - 2)
    left = position.floor().long()
    frac = position - left
    symbols = (fine.gather(1, left) * (1 - frac) + fine.gather(1, left + 1) * frac) * valid
    power = _power(symbols).sum(dim=1) / valid.sum(dim=1).clamp_min(1)
    return at, symbols / power.sqrt().clamp_min(FLOOR)[:, None], valid


def _grid_fits(s: torch.Tensor, valid: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """log10 of the mean squared distance of the valid symbols s [B, R, m] (R phase references) to the
    nearest point of each square grid of FIT_GRIDS points a side at unit power, scaled by each of
    FIT_GAINS; the best gain per grid: [B, R * len(FIT_GRIDS)], grids in order within each reference.
    The grids are symmetric, so each axis is folded to |I|, |Q| once (`_nearest_level`)."""
    folded = torch.view_as_real(s).abs()  # [B, R, m, 2]
    weight = (valid / count[:, None])[:, None, :, None]
    fits = []
    for side in FIT_GRIDS:
        best = None
        for gain in FIT_GAINS:
            error = _nearest_level(folded, side, gain).sub_(folded).square_().mul_(weight).sum(dim=(2, 3)) / gain**2
            best = error if best is None else torch.minimum(best, error)
        fits.append(_log(best))
    return torch.stack(fits, dim=2).flatten(1)


def _nearest_level(folded: torch.Tensor, side: int, gain: float) -> torch.Tensor:
    """The nearest level to each |I| or |Q| in `folded` of a side x side square grid at unit power
    scaled by `gain`: its levels sit at odd multiples of step/2, so the nearest is at
    (min(floor(|v| / step), side/2 - 1) + 1/2) step."""
    spacing_rms = math.sqrt(2 * (side * side - 1) / 3)  # rms of a side x side grid of odd integers
    step = 2 * gain / spacing_rms
    return (folded * (1 / step)).floor_().clamp_max_(side / 2 - 1).add_(0.5).mul_(step)


def _unwrap(phase: torch.Tensor) -> torch.Tensor:
    """numpy.unwrap along dim 1: steps larger than pi become their 2 pi-wrapped equivalent."""
    step = phase.diff(dim=1)
    wrapped = torch.remainder(step + math.pi, 2 * math.pi) - math.pi
    wrapped = torch.where((wrapped == -math.pi) & (step > 0), torch.full_like(wrapped, math.pi), wrapped)
    correction = torch.where(step.abs() < math.pi, torch.zeros_like(step), wrapped - step).cumsum(dim=1)
    return torch.cat([phase[:, :1], phase[:, 1:] + correction], dim=1)


def side_flops(kind: str, frame_shape: Sequence[int]) -> float:
    """Analytic FLOPs per frame: a complex FFT of n points at 5 n log2 n, powers and |.|^2 per sample."""
    _check(kind, frame_shape)
    antennas, samples = int(frame_shape[0]), int(frame_shape[1])
    if kind == "hand":
        return float(hand_feature_flops(antennas * samples))
    n = antennas * samples
    lines = len(LINE_POWERS) * (5.0 * n * math.log2(n) + 3.0 * n) + 6.0 * n * 3  # x^2, x^4, x^8 by squaring
    if kind == "lines":
        return lines
    if kind == "symbols":
        return lines + symbol_flops(n)
    if kind == "cancel":
        return lines + cancel_flops(n)
    if kind == "impairments":
        return impairment_flops(n)
    if kind == "spatial":
        return spatial_flops(antennas, samples)
    return samples * 5.0 * antennas * math.log2(antennas) + 3.0 * antennas * samples + 4.0 * antennas


def receiver_flops(samples: int) -> float:
    """Analytic FLOPs of `_receive` on one frame: complex FFTs at 5 m log2 m (a real one at half), the
    rest per sample or per symbol. A frame without a symbol-rate line takes the envelope's phase at the
    rate directly besides (8 n more, under 1 % of the rest; not counted: most frames have a line)."""
    ffts = (2 * _fft_flops(samples)  # the spectrum once the carrier is removed, the in-band signal (the lines' FFT(x) serves too)
            + 1.5 * _fft_flops(SYMBOL_PAD * samples)  # the x^4 line; |x|^2's lines (a real FFT)
            + _fft_flops(samples * UPSAMPLE))  # the upsampled signal
    per_sample = (60.0 + 12.0 * SYMBOL_PAD) * samples + 10.0 * samples * math.log2(samples)  # powers, rotation, floors
    return ffts + per_sample + 20.0 * (samples // 2)  # reading the symbols


def symbol_flops(samples: int) -> float:
    """Analytic FLOPs of `_symbols` beside the receiver: grid fits, tracking, moments, histogram."""
    symbols = samples // 2
    fits = 2 * len(FIT_GRIDS) * len(FIT_GAINS) * 14.0 * symbols  # two phase references
    return receiver_flops(samples) + fits + 30.0 * symbols


def cancel_flops(samples: int) -> float:
    """Analytic FLOPs of `_cancel` beside the receiver: decisions, gain, impulses, the fitted response,
    the two residuals and the weaker one's hand features."""
    symbols = samples // 2
    decisions = len(FIT_GRIDS) * len(FIT_GAINS) * 14.0 * symbols + 80.0 * symbols  # grid fits; tracking and the sliding gain
    impulses = 4 * 20.0 * symbols + _fft_flops(samples * IMPULSE_GRID)
    response = 40.0 * samples + _fft_flops(samples)  # products, two row means, the residual's inverse FFT
    middle = samples - 2 * (samples // 8)
    residuals = 10.0 * samples + 8.0 * middle + hand_feature_flops(middle)
    tracks = sum((length // size) * (_fft_flops(size) + 6.0 * size + 8.0) for length in (middle, samples) for size in TRACK_WINDOWS)
    return receiver_flops(samples) + decisions + impulses + response + residuals + tracks


def impairment_flops(samples: int) -> float:
    """Analytic FLOPs of `_impairments` on one frame: the padded FFT of x^4, the FFTs of the frame and
    its envelope, the sort of its spectrum, the rest per sample."""
    return (_fft_flops(SYMBOL_PAD * samples) + 2 * _fft_flops(samples) + 2.0 * samples * math.log2(samples)
            + 130.0 * samples)


def spatial_flops(antennas: int, samples: int) -> float:
    """Analytic FLOPs of `_spatial` on one frame: the covariance (8 real FLOPs per complex MAC), a
    Hermitian eigen-decomposition (~10 A^3), an FFT across the array per sample with |.|^2 and the sum
    over time, the lag means and the sort."""
    return (8.0 * antennas * antennas * samples + 10.0 * antennas**3
            + samples * (_fft_flops(antennas) + 5.0 * antennas) + 2.0 * antennas * antennas
            + antennas * math.log2(antennas))


def _fft_flops(size: int) -> float:
    return 5.0 * size * math.log2(size)


def hand_feature_flops(samples: int) -> int:
    """Analytic FLOPs of the 27 hand features of one frame of `samples` samples (the classical baseline
    reports the same count): FFTs at 5 S log2 S (complex), the rest ~per sample."""
    fft = lambda size: int(5 * size * math.log2(size))  # noqa: E731
    ffts = 6 * fft(samples) + (samples // STFT_SIZE) * fft(STFT_SIZE)  # x, x^2, x^4, x^8, |x|, PSD; STFT
    moments = 8 * 8 * samples  # powers x^k conj(x)^q and their means, complex
    per_sample = 60 * samples  # amplitude, angle, smoothing (9 taps), shares, comparisons
    return ffts + moments + per_sample + samples * int(math.log2(samples))  # + the sort for the 99 % bandwidth


def _check(kind: str, frame_shape: Sequence[int]) -> None:
    if kind not in SIDE_KINDS:
        raise SideFeatureError(f"side features must be one of {SIDE_KINDS}, got {kind!r}")
    if len(frame_shape) != 2:
        raise SideFeatureError(f"side features need frames [antennas, samples], got shape {list(frame_shape)}")
    if kind in ARRAY and int(frame_shape[0]) < 2:
        raise SideFeatureError(f"`{kind}` side features need an antenna array, got frames {list(frame_shape)}")
    if kind in SINGLE_ANTENNA and int(frame_shape[0]) != 1:
        raise SideFeatureError(f"`{kind}` side features need single-antenna frames, got frames {list(frame_shape)}")
