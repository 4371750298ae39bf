"""Masked autoencoding of I/Q patches: the encoder sees ~30 % of the patch tokens, a small decoder
reconstructs the masked ones, the loss is the MSE on masked patches only.

What is reconstructed per patch: its raw I/Q samples, plus two phase-invariant views of the same
patch, its log power spectrum and its envelope. Raw samples alone are the classic target, but on our
data a raw-only run sat at the trivial loss (predicting zeros, MSE 0.50) for its first 200+ steps:
a masked patch's carrier phase is unpredictable from far-away visible ones, so the easiest answer
is the mean. The spectrum and envelope are predictable from context (bandwidth, interferers,
amplitude statistics are shared across a frame), which gives the encoder a signal to learn from at
once; the raw part keeps cross-antenna phase in the objective for the array frames. Each view is
standardised so that the three weigh alike."""

from __future__ import annotations

import torch
from torch import nn

from xapp.model.block import Block
from xapp.model.encoder import Encoder
from xapp.model.patch import TokenPosition, normalise_power


class MaskedAutoencoder(nn.Module):
    def __init__(self, encoder: Encoder, decoder_dim: int = 128, decoder_depth: int = 2, decoder_heads: int = 4,
                 mask_ratio: float = 0.7):
        super().__init__()
        cfg = encoder.cfg
        self.encoder = encoder
        self.mask_ratio = mask_ratio
        self.norm = nn.LayerNorm(cfg.dim)
        self.to_decoder = nn.Linear(cfg.dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder_position = TokenPosition(decoder_dim, cfg.max_antennas, cfg.max_time_patches)
        self.decoder = nn.ModuleList(Block(decoder_dim, decoder_heads, 4.0) for _ in range(decoder_depth))
        self.decoder_norm = nn.LayerNorm(decoder_dim)
        self.predict = nn.Linear(decoder_dim, cfg.patch_values + 2 * cfg.patch)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, groups: list[torch.Tensor], generator: torch.Generator) -> torch.Tensor:
        """Mean masked-patch MSE over frame groups (each group one shape; all give the same token count)."""
        patch = self.encoder.cfg.patch
        tokens, targets, positions = [], [], []
        for x in groups:
            _, antennas, samples = x.shape
            tokens.append(self.encoder.patch_embed(x))
            targets.append(patch_targets(x, patch))
            pos = self.decoder_position(antennas, samples // patch)
            positions.append(pos.expand(x.shape[0], -1, -1))
        tokens, targets, positions = torch.cat(tokens), torch.cat(targets), torch.cat(positions)
        b, t, _ = tokens.shape
        keep = max(1, int(round(t * (1 - self.mask_ratio))))
        order = torch.rand(b, t, generator=generator).argsort(dim=1).to(tokens.device)
        kept = order[:, :keep]
        visible = torch.gather(tokens, 1, kept[..., None].expand(-1, -1, tokens.shape[-1]))
        h = self.encoder.with_cls(visible)
        for block in self.encoder.blocks:
            h = block(h)
        h = self.to_decoder(self.norm(h))[:, 1:]
        full = self.mask_token.expand(b, t, -1).clone()
        full.scatter_(1, kept[..., None].expand(-1, -1, full.shape[-1]), h)
        d = full + positions
        for block in self.decoder:
            d = block(d)
        prediction = self.predict(self.decoder_norm(d))
        masked = torch.ones(b, t, dtype=torch.bool, device=tokens.device)
        masked.scatter_(1, kept, False)
        error = (prediction - standardise(targets)).square().mean(dim=-1)
        return error[masked].mean()


def patch_targets(x: torch.Tensor, patch: int) -> torch.Tensor:
    """Per patch token: raw I/Q (2*patch), log power spectrum (patch) and envelope (patch)."""
    b, a, s = x.shape
    z = normalise_power(x).reshape(b, a * (s // patch), patch)
    spectrum = torch.log10(torch.fft.fft(z, dim=-1).abs().square() / patch + 1e-3)
    return torch.cat([z.real, z.imag, spectrum, z.abs()], dim=-1).float()


def standardise(targets: torch.Tensor) -> torch.Tensor:
    """Each target value to zero mean, unit variance over the batch, so the views weigh alike."""
    flat = targets.reshape(-1, targets.shape[-1])
    return (targets - flat.mean(0)) / (flat.std(0) + 1e-6)
