"""Side features: a few classical statistics of the raw frame that a head reads beside its exit.

The trunk's exits and the classical statistics are complementary (docs/research.md, "Session 11"):
on modulation the strongest line of |FFT(x^k)|^2 for k = 1, 2, 4, 8 (a carrier, symbol-rate or
phase-power line) adds 6 points to the trunk's exit 4, and on beam the label is the best DFT beam, an
argmax a head learns only approximately. Both cost a few FFTs per frame, computed in torch on the
engine's device, once per batch for the rows that need them.

- `lines`: log10 of the peak over the mean bin of |FFT(x^k)|^2, k = 1, 2, 4, 8 ([B, 4]).
- `beams`: log10 of each DFT beam's share of the frame's energy, beam b pointing at u = (b - 8) / 8,
  the order of the `beam` task's classes ([B, 16] for a 16-antenna array). A head with this side input
  adds a learned multiple of it to its logits, so the DFT's argmax is one of the rules it can express.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

SIDE_KINDS = ("lines", "beams")
LINE_POWERS = (1, 2, 4, 8)  # successive squares
FLOOR = 1e-12


class SideFeatureError(ValueError):
    """Side features asked of an unknown kind, or of frames they do not fit."""


def side_width(kind: str, frame_shape: Sequence[int]) -> int:
    """Features per frame of `kind` on frames of `frame_shape` (antennas, samples)."""
    _check(kind, frame_shape)
    return len(LINE_POWERS) if kind == "lines" else int(frame_shape[0])


def class_aligned(kind: str) -> bool:
    """Whether feature i scores class i (true of `beams`: one feature per DFT beam, in class order)."""
    return kind == "beams"


def side_features(kind: str, frames: torch.Tensor) -> torch.Tensor:
    """Float32 [B, width] features of complex frames [B, antennas, samples]."""
    _check(kind, frames.shape[1:])
    x = frames.to(torch.complex64)
    if kind == "lines":
        x = x.reshape(len(x), -1)
        peaks = []
        for i in range(len(LINE_POWERS)):  # x, x^2, x^4, x^8: each the square of the one before
            x = x * x if i else x
            power = torch.fft.fft(x, dim=1).abs().square()
            peaks.append(power.amax(dim=1) / power.mean(dim=1).clamp_min(FLOOR))
        return torch.stack(peaks, dim=1).clamp_min(FLOOR).log10()
    energy = torch.fft.fftshift(torch.fft.fft(x, dim=1), dim=1).abs().square().sum(dim=2)
    return (energy / energy.sum(dim=1, keepdim=True).clamp_min(FLOOR)).clamp_min(FLOOR).log10()


def side_flops(kind: str, frame_shape: Sequence[int]) -> float:
    """Analytic FLOPs per frame: a complex FFT of n points at 5 n log2 n, powers and |.|^2 per sample."""
    _check(kind, frame_shape)
    antennas, samples = int(frame_shape[0]), int(frame_shape[1])
    if kind == "lines":
        n = antennas * samples
        return len(LINE_POWERS) * (5.0 * n * math.log2(n) + 3.0 * n) + 6.0 * n * 3  # x^2, x^4, x^8 by squaring
    return samples * 5.0 * antennas * math.log2(antennas) + 3.0 * antennas * samples + 4.0 * antennas


def _check(kind: str, frame_shape: Sequence[int]) -> None:
    if kind not in SIDE_KINDS:
        raise SideFeatureError(f"side features must be one of {SIDE_KINDS}, got {kind!r}")
    if len(frame_shape) != 2:
        raise SideFeatureError(f"side features need frames [antennas, samples], got shape {list(frame_shape)}")
    if kind == "beams" and int(frame_shape[0]) < 2:
        raise SideFeatureError(f"`beams` side features need an antenna array, got frames {list(frame_shape)}")
