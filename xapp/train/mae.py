"""Masked autoencoding of I/Q patches: the encoder sees ~30 % of the patch tokens, a small decoder
reconstructs the masked ones, the loss is the MSE on masked patches only.

What is reconstructed per masked patch, in the spirit of MaskFeat's engineered targets, as five
views weighted equally: its raw I/Q samples (the classic target), its log power, its coarse log
power spectrum (4 bands), its envelope spread, and its mean product with antenna 0's samples over
the same time span, normalised (the array's relative phase; a constant for one-antenna frames).

Why not raw samples alone: most of a masked patch's samples are unpredictable here (random data
symbols, random carrier phase, SNR down to -20 dB), so a raw-only run sat at the trivial loss
(predicting zeros, MSE 0.50) for 200+ steps, and a run adding per-sample spectra and envelopes
learned little more in 500 steps. Patch-level statistics are predictable from the visible patches
(bandwidth, interferers, amplitude statistics and the angle of arrival are shared across a frame),
so they carry a learning signal from the first steps. The relative-phase view cancels the unknown
carrier phase and leaves the angle of arrival, to push the encoder towards the array geometry; in
our budget it did not get there (beam probe at the random encoder's level, docs/pretraining.md)."""

from __future__ import annotations

import torch
from torch import nn

from xapp.model.block import Block
from xapp.model.encoder import Encoder
from xapp.model.patch import TokenPosition, normalise_power

SPECTRUM_BANDS = 4


def view_widths(patch: int) -> dict[str, int]:
    return {"raw": 2 * patch, "power": 1, "spectrum": SPECTRUM_BANDS, "envelope": 1, "relative": 2}


def patch_targets(x: torch.Tensor, patch: int) -> torch.Tensor:
    """The reconstruction views of every patch token, concatenated: [B, A*S/patch, sum(view_widths)]."""
    b, a, s = x.shape
    x = normalise_power(x)
    tokens = a * (s // patch)
    z = x.reshape(b, tokens, patch)
    power = z.abs().square().mean(-1)
    spectrum = torch.fft.fft(z, dim=-1).abs().square() / patch
    spectrum = spectrum.reshape(b, tokens, SPECTRUM_BANDS, patch // SPECTRUM_BANDS).mean(-1)
    envelope = z.abs()
    reference = x[:, :1].expand(-1, a, -1).reshape(b, tokens, patch)
    cross = (z * reference.conj()).mean(-1) / torch.sqrt(power * reference.abs().square().mean(-1) + 1e-9)
    views = [
        z.real, z.imag,
        torch.log10(power + 1e-3)[..., None],
        torch.log10(spectrum + 1e-3),
        (envelope.std(-1) / (envelope.mean(-1) + 1e-6))[..., None],
        cross.real[..., None], cross.imag[..., None],
    ]
    return torch.cat(views, dim=-1).float()


def standardise(targets: torch.Tensor) -> torch.Tensor:
    """Each target value to zero mean, unit variance over the batch (a constant value stays 0)."""
    flat = targets.reshape(-1, targets.shape[-1])
    return (targets - flat.mean(0)) / (flat.std(0) + 1e-6)


class MaskedAutoencoder(nn.Module):
    def __init__(self, encoder: Encoder, decoder_dim: int = 128, decoder_depth: int = 2, decoder_heads: int = 4,
                 mask_ratio: float = 0.7):
        super().__init__()
        cfg = encoder.cfg
        self.encoder = encoder
        self.mask_ratio = mask_ratio
        self.widths = view_widths(cfg.patch)
        self.norm = nn.LayerNorm(cfg.dim)
        self.to_decoder = nn.Linear(cfg.dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_dim))
        self.decoder_position = TokenPosition(decoder_dim, cfg.max_antennas, cfg.max_time_patches)
        self.decoder = nn.ModuleList(Block(decoder_dim, decoder_heads, 4.0) for _ in range(decoder_depth))
        self.decoder_norm = nn.LayerNorm(decoder_dim)
        self.predict = nn.Linear(decoder_dim, sum(self.widths.values()))
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, groups: list[torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Masked-patch MSE per view and their mean ("loss") over frame groups (each group one frame
        shape; all shapes give the same token count)."""
        patch = self.encoder.cfg.patch
        tokens, targets, positions = [], [], []
        for x in groups:
            _, antennas, samples = x.shape
            tokens.append(self.encoder.patch_embed(x))
            targets.append(patch_targets(x, patch))
            positions.append(self.decoder_position(antennas, samples // patch).expand(x.shape[0], -1, -1))
        tokens, targets, positions = torch.cat(tokens), torch.cat(targets), torch.cat(positions)
        b, t, _ = tokens.shape
        keep = max(1, int(round(t * (1 - self.mask_ratio))))
        kept = torch.rand(b, t, generator=generator).argsort(dim=1)[:, :keep].to(tokens.device)
        visible = torch.gather(tokens, 1, kept[..., None].expand(-1, -1, tokens.shape[-1]))
        h = self.encoder.with_cls(visible)
        for block in self.encoder.blocks:
            h = block(h)
        h = self.to_decoder(self.norm(h))[:, 1:]
        d = self.mask_token.expand(b, t, -1).clone()
        d.scatter_(1, kept[..., None].expand(-1, -1, d.shape[-1]), h)
        d = d + positions
        for block in self.decoder:
            d = block(d)
        prediction = self.predict(self.decoder_norm(d))
        masked = torch.ones(b, t, dtype=torch.bool, device=tokens.device)
        masked.scatter_(1, kept, False)
        error = (prediction - standardise(targets)).square()[masked]
        losses = {name: part.mean() for name, part in zip(self.widths, error.split(list(self.widths.values()), -1))}
        losses["loss"] = torch.stack(list(losses.values())).mean()
        return losses
