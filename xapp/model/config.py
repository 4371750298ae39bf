from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class EncoderConfig:
    """Shape of the shared encoder: a ViT over 16-sample I/Q patches (WavesFM-small-like)."""

    dim: int = 256
    depth: int = 8
    heads: int = 8
    mlp_ratio: float = 4.0
    patch: int = 16  # complex samples per patch; a token sees 2*patch real values
    max_antennas: int = 16
    max_time_patches: int = 256

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
        return cls(**data)
