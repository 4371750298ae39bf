"""From complex I/Q frames to tokens: per-frame power normalisation, then either 16-sample patches per
antenna (layout "antenna") or, for array frames, tokens that span the array (layout "array"); a
linear projection, sin-cos time position and a learned antenna embedding."""

from __future__ import annotations

import math

import torch
from torch import nn

from xapp.model.config import EncoderConfig


# A frame whose largest sample part (real or imaginary) is louder or quieter than these is divided by it
# first: float32 squares overflow from ~1.8e19, and under ~1e-3 the square root's guard (1e-12) starts to
# bend the scale.
LOUD, QUIET = 1e15, 1e-3


def normalise_power(x: torch.Tensor) -> torch.Tensor:
    """Scale each frame (dimension 0 indexes frames) to unit average power of its complex samples, whatever
    its (finite, nonzero) amplitude. `x` holds complex samples, or their real and imaginary parts as real
    values (each sample's two parts once, in any order: a frame's tokens), which is quicker to scale."""
    parts = torch.view_as_real(x) if x.is_complex() else x
    frame = tuple(range(1, parts.ndim))
    peak = parts.abs().amax(dim=frame, keepdim=True)
    parts = parts / torch.where((peak > LOUD) | ((peak < QUIET) & (peak > 0)), peak, torch.ones_like(peak))
    power = 2 * parts.square().mean(dim=frame, keepdim=True)
    scaled = parts * torch.rsqrt(power + 1e-12)
    return torch.view_as_complex(scaled) if x.is_complex() else scaled


def patchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """Complex [B, A, S] -> real [B, A * S/patch, 2*patch], antenna-major, real part then imaginary."""
    b, a, s = x.shape
    if s % patch:
        raise ValueError(f"frame length {s} is not a multiple of the patch size {patch}")
    x = x.reshape(b, a, s // patch, patch)
    return torch.cat([x.real, x.imag], dim=-1).reshape(b, a * (s // patch), 2 * patch).float()


def array_tokens(x: torch.Tensor, patch: int) -> torch.Tensor:
    """Complex [B, A, S] -> real [B, A*S/patch, 2*patch]: token t holds all A antennas over patch/A
    instants, antenna-major, real part then imaginary. One antenna: the same as patchify."""
    b, a, s = x.shape
    if patch % a:
        raise ValueError(f"a frame of {a} antennas cannot span the array in tokens of {patch} samples "
                         f"(antennas must divide {patch})")
    instants = patch // a
    if s % instants:
        raise ValueError(f"frame length {s} is not a multiple of the {instants} instants per array token")
    x = x.reshape(b, a, s // instants, instants).permute(0, 2, 1, 3).reshape(b, s // instants, patch)
    return torch.cat([x.real, x.imag], dim=-1).float()


def capture_windows(x, windows: int):
    """Captures [N, antennas, windows * samples] (numpy or torch) as [N * windows, antennas, samples]:
    each capture's consecutive windows in time order, one capture after another."""
    n, antennas, length = x.shape
    return x.reshape(n, antennas, windows, length // windows).swapaxes(1, 2).reshape(
        n * windows, antennas, length // windows)


def token_grid(layout: str, antennas: int, samples: int, patch: int) -> tuple[int, int]:
    """(rows, time positions) of a frame's tokens: per antenna, or one row when tokens span the array."""
    if layout == "array":
        return 1, antennas * samples // patch
    return antennas, samples // patch


def sincos_table(length: int, dim: int) -> torch.Tensor:
    position = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)
    return table


class TokenPosition(nn.Module):
    """Position of each patch token: sin-cos of its time index plus a learned embedding of its antenna."""

    def __init__(self, dim: int, max_antennas: int, max_time_patches: int):
        super().__init__()
        self.antenna = nn.Embedding(max_antennas, dim)
        self.register_buffer("time", sincos_table(max_time_patches, dim), persistent=False)
        nn.init.normal_(self.antenna.weight, std=0.02)

    def forward(self, antennas: int, time_patches: int) -> torch.Tensor:
        if antennas > self.antenna.num_embeddings or time_patches > self.time.shape[0]:
            raise ValueError(
                f"frame layout {antennas} antennas x {time_patches} patches exceeds the encoder's "
                f"{self.antenna.num_embeddings} x {self.time.shape[0]}"
            )
        ant = self.antenna.weight[:antennas, None, :]
        return (ant + self.time[None, :time_patches, :]).reshape(antennas * time_patches, -1)


class PatchEmbed(nn.Module):
    """`proj` embeds time patches; with layout "array", `array_proj` embeds tokens of array frames."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.patch, self.layout = cfg.patch, cfg.layout
        self.proj = nn.Linear(cfg.patch_values, cfg.dim)
        self.array_proj = nn.Linear(cfg.patch_values, cfg.dim) if cfg.layout == "array" else None
        self.position = TokenPosition(cfg.dim, cfg.max_antennas, cfg.max_time_patches)

    def grid(self, antennas: int, samples: int) -> tuple[int, int]:
        return token_grid(self.layout, antennas, samples, self.patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Complex [B, A, S] -> patch tokens [B, A*S/patch, dim] with positions added."""
        _, antennas, samples = x.shape
        if self.array_proj is not None and antennas > 1:
            tokens = self.array_proj(normalise_power(array_tokens(x, self.patch)))
        else:
            tokens = self.proj(normalise_power(patchify(x, self.patch)))
        return tokens + self.position(*self.grid(antennas, samples))
