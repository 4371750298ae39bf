from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from xapp.model.block import Block
from xapp.model.config import EncoderConfig
from xapp.model.patch import PatchEmbed


class Encoder(nn.Module):
    """The shared trunk. Exit k (1-based) is the output of block k; every block can be an exit."""

    def __init__(self, cfg: EncoderConfig = EncoderConfig()):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = PatchEmbed(cfg)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.blocks = nn.ModuleList(Block(cfg.dim, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        nn.init.normal_(self.cls, std=0.02)
        self.apply(_init_weights)

    def with_cls(self, patch_tokens: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.cls.expand(patch_tokens.shape[0], -1, -1), patch_tokens], dim=1)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Complex frames [B, A, S] -> input tokens [B, 1 + A*S/patch, dim], CLS first."""
        return self.with_cls(self.patch_embed(x))

    def forward(self, x: torch.Tensor, exits: Sequence[int]) -> dict[int, torch.Tensor]:
        """Hidden states [B, T, dim] at each requested exit, in one pass that stops at the deepest."""
        wanted = set(exits)
        if not wanted or min(wanted) < 1 or max(wanted) > self.cfg.depth:
            raise ValueError(f"exits must lie in 1..{self.cfg.depth}, got {sorted(wanted)}")
        h = self.tokens(x)
        states = {}
        for k, block in enumerate(self.blocks[: max(wanted)], start=1):
            h = block(h)
            if k in wanted:
                states[k] = h
        return states


def _init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
