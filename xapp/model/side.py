"""Side features: a few classical statistics of the raw frame that a head reads beside its exit.

The trunk's exits and the classical statistics are complementary (docs/research.md, "Session 11"):
on modulation the strongest line of |FFT(x^k)|^2 for k = 1, 2, 4, 8 (a carrier, symbol-rate or
phase-power line) adds about 6 points to the trunk's exit 4, and on beam the label is the best DFT
beam, an argmax a head learns only approximately. Both cost a few FFTs per frame, computed in torch on
the engine's device, once per batch for the rows that need them. The 27 hand features add under a
point more than the lines at six times their CPU time, so the shipped heads read the lines
(docs/research.md, "Session 12").

- `lines`: log10 of the peak over the mean bin of |FFT(x^k)|^2, k = 1, 2, 4, 8 ([B, 4]).
- `hand`: the classical baselines' 27 hand features (xapp.train.baselines.features, which is the
  float64 numpy reference): cumulants, the lines, envelope and instantaneous-frequency statistics,
  bandwidths and spectral shape, short-time (burst, hop, sweep) statistics ([B, 27]), on the frame
  scaled to unit power.
- `beams`: log10 of each DFT beam's share of the frame's energy, beam b pointing at u = (b - 8) / 8,
  the order of the `beam` task's classes ([B, 16] for a 16-antenna array). A head with this side input
  adds a learned multiple of it to its logits, so the DFT's argmax is one of the rules it can express.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

SIDE_KINDS = ("lines", "hand", "beams")
LINE_POWERS = (1, 2, 4, 8)  # successive squares
HAND_FEATURES = 27
STFT_SIZE = 64
SMOOTHING_BINS = 9
FLOOR = 1e-12


class SideFeatureError(ValueError):
    """Side features asked of an unknown kind, or of frames they do not fit."""


def side_width(kind: str, frame_shape: Sequence[int]) -> int:
    """Features per frame of `kind` on frames of `frame_shape` (antennas, samples)."""
    _check(kind, frame_shape)
    return {"lines": len(LINE_POWERS), "hand": HAND_FEATURES}.get(kind) or int(frame_shape[0])


def class_aligned(kind: str) -> bool:
    """Whether feature i scores class i (true of `beams`: one feature per DFT beam, in class order)."""
    return kind == "beams"


def side_features(kind: str, frames: torch.Tensor) -> torch.Tensor:
    """Float32 [B, width] features of complex frames [B, antennas, samples]."""
    _check(kind, frames.shape[1:])
    x = frames.to(torch.complex64)
    if kind == "lines":
        return _lines(_power_spectra(x.reshape(len(x), -1)))
    if kind == "hand":
        return _hand(x.reshape(len(x), -1))
    energy = torch.fft.fftshift(torch.fft.fft(x, dim=1), dim=1).abs().square().sum(dim=2)
    return (energy / energy.sum(dim=1, keepdim=True).clamp_min(FLOOR)).clamp_min(FLOOR).log10()


def head_reads(kind: str | None) -> str:
    """What a head reads, as the report and `xapp exits` show it: `tokens`, or `tokens + <kind>`."""
    return "tokens" if kind is None else f"tokens + {kind}"


def _log(v: torch.Tensor) -> torch.Tensor:
    return v.clamp_min(FLOOR).log10()


def _peak_over_mean(power: torch.Tensor) -> torch.Tensor:
    return _log(power.amax(dim=-1) / power.mean(dim=-1).clamp_min(FLOOR))


def _power_spectra(x: torch.Tensor) -> list[torch.Tensor]:
    """|FFT(x^k)|^2 for k in LINE_POWERS (x, x^2, x^4, x^8: each the square of the one before)."""
    spectra = []
    for i in range(len(LINE_POWERS)):
        x = x * x if i else x
        spectra.append(torch.fft.fft(x, dim=1).abs().square())
    return spectra


def _lines(spectra: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack([_peak_over_mean(power) for power in spectra], dim=1)


def _kurtosis(v: torch.Tensor) -> torch.Tensor:
    c = v - v.mean(dim=1, keepdim=True)
    return c.pow(4).mean(dim=1) / c.square().mean(dim=1).square().clamp_min(FLOOR)


def _cumulants(x: torch.Tensor) -> torch.Tensor:
    """|C20|, |C40|, |C41|, |C42|, |C60|, |C63| (zero-mean formulas), as the numpy reference."""
    x2, power = x * x, x.abs().square()
    m20, m21 = x2.mean(dim=1), power.mean(dim=1).to(x.dtype)
    m40, m41, m42 = (x2 * x2).mean(dim=1), (x2 * power).mean(dim=1), power.square().mean(dim=1).to(x.dtype)
    m60, m63 = (x2 * x2 * x2).mean(dim=1), power.pow(3).mean(dim=1).to(x.dtype)
    c40 = m40 - 3 * m20**2
    c41 = m41 - 3 * m20 * m21
    c42 = m42 - m20.abs().square() - 2 * m21**2
    c60 = m60 - 15 * m40 * m20 + 30 * m20**3
    c63 = m63 - 6 * m41 * m20.conj() - 9 * m42 * m21 + 18 * m20.abs().square() * m21 + 12 * m21**3
    return torch.stack([m20, c40, c41, c42, c60, c63], dim=1).abs()


def _hand(x: torch.Tensor) -> torch.Tensor:
    n, s = x.shape
    x = x / x.abs().square().mean(dim=1, keepdim=True).sqrt().clamp_min(FLOOR)
    spectra = _power_spectra(x)
    out = [_log(_cumulants(x)), _lines(spectra)]

    amp = x.abs()
    amp_c = amp / amp.mean(dim=1, keepdim=True).clamp_min(FLOOR) - 1
    step = x[:, 1:] * x[:, :-1].conj()
    freq = torch.angle(step) / (2 * math.pi)
    turn = step / step.abs().clamp_min(FLOOR)  # exp(2j pi freq)
    out.append(torch.stack([
        amp_c.std(dim=1, correction=0), _log(_kurtosis(amp)),
        _peak_over_mean(torch.fft.fft(amp_c, dim=1).abs().square()),
        freq.std(dim=1, correction=0), _log(_kurtosis(freq)), freq.diff(dim=1).std(dim=1, correction=0),
        turn.mean(dim=1).abs(),
    ], dim=1))

    psd = spectra[0]
    half = SMOOTHING_BINS // 2
    smooth = sum(torch.roll(psd, shift, dims=1) for shift in range(-half, half + 1)) / SMOOTHING_BINS
    ordered = psd.sort(dim=1, descending=True).values
    reached = ordered.cumsum(dim=1) >= 0.99 * psd.sum(dim=1, keepdim=True)
    bw99 = reached.float().argmax(dim=1) / s  # the first bin that reaches 99 % of the energy
    top = smooth.amax(dim=1, keepdim=True)
    bw10 = (smooth > 0.1 * top).float().mean(dim=1)
    flatness = (smooth + FLOOR).log().mean(dim=1).exp() / smooth.mean(dim=1).clamp_min(FLOOR)
    out.append(torch.stack([bw99, bw10, flatness, _peak_over_mean(smooth)], dim=1))

    frames = s // STFT_SIZE
    stft = torch.fft.fft(x[:, : frames * STFT_SIZE].reshape(n, frames, STFT_SIZE), dim=2).abs().square()
    power = stft.sum(dim=2)
    peak_energy, peak = stft.max(dim=2)
    share = peak_energy / power.clamp_min(FLOOR)
    occupied = (stft > 0.1 * peak_energy[..., None]).float().mean(dim=2)
    track = _unwrap(peak.float() * (2 * math.pi / STFT_SIZE))
    out.append(torch.stack([
        power.std(dim=1, correction=0) / power.mean(dim=1).clamp_min(FLOOR),
        _log(power.amax(dim=1) / power.amin(dim=1).clamp_min(FLOOR)),
        track.std(dim=1, correction=0), share.mean(dim=1), (peak.diff(dim=1) != 0).float().mean(dim=1),
        occupied.std(dim=1, correction=0),
    ], dim=1))
    return torch.cat(out, dim=1)


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
    if kind == "lines":
        n = antennas * samples
        return len(LINE_POWERS) * (5.0 * n * math.log2(n) + 3.0 * n) + 6.0 * n * 3  # x^2, x^4, x^8 by squaring
    return samples * 5.0 * antennas * math.log2(antennas) + 3.0 * antennas * samples + 4.0 * antennas


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
    if kind == "beams" and int(frame_shape[0]) < 2:
        raise SideFeatureError(f"`beams` side features need an antenna array, got frames {list(frame_shape)}")
