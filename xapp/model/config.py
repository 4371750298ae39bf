from __future__ import annotations

import dataclasses
from dataclasses import dataclass


LAYOUTS = ("antenna", "array")
LEGACY_LAYOUT = "antenna"  # checkpoints written before `layout` existed used per-antenna patches


@dataclass(frozen=True)
class EncoderConfig:
    """Shape of the shared encoder: a ViT over I/Q tokens of 2*patch real values (WavesFM-small-like).

    layout "antenna": every token is `patch` samples of one antenna (time patches per antenna).
    layout "array": one-antenna frames keep time patches; a token of an A-antenna frame is all A
    antennas over patch/A instants (16x64: one instant per token), through its own projection, so a
    token carries the array's phase front. Both give the same token count for a frame."""

    dim: int = 256
    depth: int = 8
    heads: int = 8
    mlp_ratio: float = 4.0
    patch: int = 16  # complex samples per patch; a token sees 2*patch real values
    max_antennas: int = 16
    max_time_patches: int = 256
    layout: str = "array"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"encoder layout must be one of {LAYOUTS}, got {self.layout!r}")

    @property
    def patch_values(self) -> int:
        return 2 * self.patch

    def tokens(self, antennas: int, samples: int) -> int:
        """Token count (CLS included) of one frame of shape [antennas, samples]."""
        return 1 + antennas * (samples // self.patch)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "EncoderConfig":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise ValueError(f"unknown encoder config fields: {sorted(unknown)}")
        return cls(**{"layout": LEGACY_LAYOUT, **data})
