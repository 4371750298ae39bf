"""From complex I/Q frames to tokens: per-frame power normalisation, 16-sample patches per antenna,
a linear projection, sin-cos time position and a learned antenna embedding."""

from __future__ import annotations

import math

import torch
from torch import nn

from xapp.model.config import EncoderConfig


def normalise_power(x: torch.Tensor) -> torch.Tensor:
    """Scale each complex frame [B, A, S] to unit average power."""
    power = x.abs().square().mean(dim=(-2, -1), keepdim=True)
    return x / torch.sqrt(power + 1e-12)


def patchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """Complex [B, A, S] -> real [B, A * S/patch, 2*patch], antenna-major, real part then imaginary."""
    b, a, s = x.shape
    if s % patch:
        raise ValueError(f"frame length {s} is not a multiple of the patch size {patch}")
    x = x.reshape(b, a, s // patch, patch)
    return torch.cat([x.real, x.imag], dim=-1).reshape(b, a * (s // patch), 2 * patch).float()


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
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.patch = cfg.patch
        self.proj = nn.Linear(cfg.patch_values, cfg.dim)
        self.position = TokenPosition(cfg.dim, cfg.max_antennas, cfg.max_time_patches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Complex [B, A, S] -> patch tokens [B, A*S/patch, dim] with positions added."""
        _, antennas, samples = x.shape
        tokens = self.proj(patchify(normalise_power(x), self.patch))
        return tokens + self.position(antennas, samples // self.patch)
