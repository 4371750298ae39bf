"""Masked autoencoding of I/Q patches: the encoder sees ~30 % of the patch tokens, a small decoder
reconstructs the masked ones, the loss is the MSE on masked patches only.

What is reconstructed per masked patch, in the spirit of MaskFeat's engineered targets, as five
views weighted equally: its raw I/Q samples (the classic target), its log power, its coarse log
power spectrum (4 bands), its envelope spread, and its mean product with antenna 0's samples over
the same time span, normalised (the array's relative phase; a constant for one-antenna frames).

Why not raw samples alone: most of a masked patch's samples are unpredictable here (random data
symbols, random carrier phase, SNR down to -20 dB), so a raw-only run sat at the trivial loss
(predicting zeros, MSE 0.50) for 200+ steps. Patch-level statistics are predictable from the visible
patches (bandwidth, interferers, amplitude statistics and the angle of arrival are shared across a
frame), so they carry a learning signal from the first steps.

Frame views (frame_weight > 0): a linear readout of every exit's mean-pooled state predicts two
views of the whole frame, its 16-band log power spectrum and its 16-beam log angular spectrum (the
energy of each DFT beam across the antennas), read from the masked pass or from a second pass over
all tokens (frame_pass). Why: with per-antenna patches, where a signal comes from lives only in the
phase differences between tokens, and the patch views alone never made the encoder carry it; the
angular-spectrum view asks for it directly, from every exit, in the form the heads read
(docs/pretraining.md has the runs).

Array layout (EncoderConfig.layout "array"): a token's values are one antenna's time patch or all
antennas at one instant, and the views follow the token: the 4-band spectrum is taken along the
token's values (time, or space: the array's coarse angular spectrum), and the relative view is the
normalised lag-1 product along them (frequency offset in time, the phase step across the array).

Exit-aware terms, so that every block is a useful exit, not only the last (docs/pretraining.md):
the frame views are read from every exit (deep supervision); with distill_weight > 0 each shallower
exit's mean-pooled state also predicts, through its own linear map, the deepest exit's (standardised,
no gradient into the teacher: self-distillation); with layer_drop > 0 block l's update is dropped for
a frame with probability layer_drop * l / depth during training (LayerSkip's rising layer dropout)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import nn

from xapp.model.block import Block
from xapp.model.encoder import Encoder
from xapp.model.patch import TokenPosition, normalise_power

SPECTRUM_BANDS = 4
FRAME_BANDS = 16  # the frame-level views: a 16-band log power spectrum in time and 16 DFT beams in space
FRAME_PASSES = ("masked", "full")  # which encoder pass the frame views are read from: the MAE's visible tokens, or all


def view_widths(patch: int) -> dict[str, int]:
    return {"raw": 2 * patch, "power": 1, "spectrum": SPECTRUM_BANDS, "envelope": 1, "relative": 2}


def patch_targets(x: torch.Tensor, patch: int, layout: str = "antenna") -> torch.Tensor:
    """The reconstruction views of every patch token, concatenated: [B, A*S/patch, sum(view_widths)]."""
    if layout == "array":
        return array_token_targets(x, patch)
    b, a, s = x.shape
    x = normalise_power(x)
    z = x.reshape(b, a * (s // patch), patch)
    reference = x[:, :1].expand(-1, a, -1).reshape(z.shape)
    power = z.abs().square().mean(-1)
    cross = (z * reference.conj()).mean(-1) / torch.sqrt(power * reference.abs().square().mean(-1) + 1e-9)
    return token_views(z, power, cross)


def array_token_targets(x: torch.Tensor, patch: int) -> torch.Tensor:
    """The views of array-layout tokens (see the module notes), [B, A*S/patch, sum(view_widths)]."""
    b, a, s = x.shape
    x = normalise_power(x)
    instants = patch // a
    z = x.reshape(b, a, s // instants, instants).permute(0, 2, 1, 3).reshape(b, -1, patch)
    power = z.abs().square().mean(-1)
    step = (z[..., 1:] * z[..., :-1].conj()).mean(-1) / (power + 1e-9)
    return token_views(z, power, step)


def token_views(z: torch.Tensor, power: torch.Tensor, relative: torch.Tensor) -> torch.Tensor:
    """Token values z [B, T, L] (complex), their mean power [B, T] and relative view [B, T] (complex) ->
    the concatenated views: raw, log power, 4-band log spectrum along L, envelope spread, relative."""
    length = z.shape[-1]
    spectrum = torch.fft.fft(z, dim=-1).abs().square() / length
    spectrum = spectrum.reshape(*z.shape[:2], SPECTRUM_BANDS, length // SPECTRUM_BANDS).mean(-1)
    envelope = z.abs()
    views = [
        z.real, z.imag,
        torch.log10(power + 1e-3)[..., None],
        torch.log10(spectrum + 1e-3),
        (envelope.std(-1) / (envelope.mean(-1) + 1e-6))[..., None],
        relative.real[..., None], relative.imag[..., None],
    ]
    return torch.cat(views, dim=-1).float()


def frame_targets(x: torch.Tensor) -> torch.Tensor:
    """The frame-level views of frames [B, A, S]: [B, 2 * FRAME_BANDS], the log power spectrum in
    FRAME_BANDS bands (averaged over antennas), then the log energy of FRAME_BANDS DFT beams across the
    antennas (the power angular spectrum; NaN for one-antenna frames, which have no array)."""
    b, a, s = x.shape
    x = normalise_power(x)
    spectrum = torch.fft.fft(x, dim=-1).abs().square().mean(1) / s
    spectrum = spectrum.reshape(b, FRAME_BANDS, s // FRAME_BANDS).mean(-1)
    if a == 1:
        spatial = torch.full((b, FRAME_BANDS), float("nan"), device=x.device)
    else:
        spatial = torch.fft.fft(x, n=FRAME_BANDS, dim=1).abs().square().mean(-1) / a
    return torch.log10(torch.cat([spectrum, spatial], dim=-1) + 1e-3).float()


def standardise(targets: torch.Tensor) -> torch.Tensor:
    """Each target value to zero mean, unit variance over the batch (a constant value stays 0; NaN,
    a view the frame does not have, stays NaN)."""
    flat = targets.reshape(-1, targets.shape[-1])
    mean = flat.nanmean(0)
    count = (~flat.isnan()).sum(0)
    std = ((flat - mean).square().nansum(0) / (count - 1).clamp(min=1)).sqrt()
    return (targets - mean) / (std + 1e-6)


def masked_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE over the target values that exist (not NaN)."""
    valid = ~target.isnan()
    error = torch.where(valid, prediction - target.nan_to_num(), 0.0).square()
    return error.sum() / valid.sum().clamp(min=1)


def kept_rows(rows: int, last_rate: float, depth: int, generator: torch.Generator,
              device: torch.device) -> list[torch.Tensor | None]:
    """Per block, which frames go through it ([rows, 1, 1] bool on `device`; None: all): block l is
    skipped with probability last_rate * l / depth (LayerSkip's rising layer dropout). Drawn for every
    block at once and copied once without waiting: a blocking copy per block (a plain `.to(device)`)
    makes the host wait for the GPU at every block of every step."""
    if last_rate <= 0:
        return [None] * depth
    rates = last_rate * torch.arange(1, depth + 1) / depth
    keep = (torch.rand(depth, rows, generator=generator) >= rates[:, None])[:, :, None, None]
    return list(without_waiting(keep, device).unbind(0))


def without_waiting(t: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """A host tensor on `device`, copied through pinned memory without a stream sync."""
    if torch.device(device).type == "cuda":
        t = t.pin_memory()
    return t.to(device, non_blocking=True)


def through_blocks(blocks: Sequence[nn.Module], h: torch.Tensor, last_rate: float,
                   generator: torch.Generator) -> Iterator[torch.Tensor]:
    """The state after each block in turn, each frame skipping block l (keeping its state) with
    probability last_rate * l / depth (`kept_rows`)."""
    for block, keep in zip(blocks, kept_rows(h.shape[0], last_rate, len(blocks), generator, h.device)):
        h = block(h) if keep is None else torch.where(keep, block(h), h)
        yield h


class MaskedAutoencoder(nn.Module):
    def __init__(self, encoder: Encoder, decoder_dim: int = 128, decoder_depth: int = 2, decoder_heads: int = 4,
                 mask_ratio: float = 0.7, frame_weight: float = 0.0, frame_pass: str = "masked",
                 distill_weight: float = 0.0, layer_drop: float = 0.0):
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
        if frame_pass not in FRAME_PASSES:
            raise ValueError(f"frame_pass must be one of {FRAME_PASSES}, got {frame_pass!r}")
        self.frame_weight, self.frame_pass = frame_weight, frame_pass
        readouts = cfg.depth if frame_weight > 0 else 0
        self.frame_readouts = nn.ModuleList(nn.Linear(cfg.dim, 2 * FRAME_BANDS) for _ in range(readouts))
        self.distill_weight, self.layer_drop = distill_weight, layer_drop
        students = cfg.depth - 1 if distill_weight > 0 else 0
        self.distill_maps = nn.ModuleList(nn.Linear(cfg.dim, cfg.dim) for _ in range(students))
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, groups: list[torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Loss per view over frame groups (each group one frame shape; all shapes give the same token
        count): masked-patch MSE for the patch views; with frame views on, the MSE of a linear readout
        of every exit's mean-pooled state for each frame view, averaged over exits. "loss" is the mean
        of the patch views plus frame_weight times the mean of the frame views."""
        cfg = self.encoder.cfg
        tokens, targets, frames, positions = [], [], [], []
        for x in groups:
            _, antennas, samples = x.shape
            tokens.append(self.encoder.patch_embed(x))
            targets.append(patch_targets(x, cfg.patch, cfg.layout))
            if self.frame_readouts:
                frames.append(frame_targets(x))
            grid = self.encoder.patch_embed.grid(antennas, samples)
            positions.append(self.decoder_position(*grid).expand(x.shape[0], -1, -1))
        tokens, targets, positions = torch.cat(tokens), torch.cat(targets), torch.cat(positions)
        b, t, _ = tokens.shape
        keep = max(1, int(round(t * (1 - self.mask_ratio))))
        kept = without_waiting(torch.rand(b, t, generator=generator).argsort(dim=1)[:, :keep], tokens.device)
        visible = torch.gather(tokens, 1, kept[..., None].expand(-1, -1, tokens.shape[-1]))
        h, pooled = self._trunk(self.encoder.with_cls(visible), generator)
        if self.frame_pass == "full" and (self.frame_readouts or self.distill_maps):
            _, pooled = self._trunk(self.encoder.with_cls(tokens), generator)
        h = self.to_decoder(self.norm(h))[:, 1:]
        d = self.mask_token.expand(b, t, -1).clone()
        d.scatter_(1, kept[..., None].expand(-1, -1, d.shape[-1]), h.to(d.dtype))
        d = d + positions
        for block in self.decoder:
            d = block(d)
        prediction = self.predict(self.decoder_norm(d))
        masked = torch.ones(b, t, dtype=torch.bool, device=tokens.device)
        masked.scatter_(1, kept, False)
        error = (prediction - standardise(targets)).square()[masked]
        losses = {name: part.mean() for name, part in zip(self.widths, error.split(list(self.widths.values()), -1))}
        total = torch.stack(list(losses.values())).mean()
        if self.frame_readouts:
            wanted = standardise(torch.cat(frames)).chunk(2, -1)
            per_exit = [[masked_mse(g, f) for g, f in zip(readout(p).chunk(2, -1), wanted)]
                        for readout, p in zip(self.frame_readouts, pooled)]
            for i, name in enumerate(("frame_spectrum", "frame_spatial")):
                losses[name] = torch.stack([e[i] for e in per_exit]).mean()
            total = total + self.frame_weight * (losses["frame_spectrum"] + losses["frame_spatial"]) / 2
        if self.distill_maps:
            teacher = standardise(pooled[-1].detach().float())
            losses["distill"] = torch.stack([(m(p) - teacher).square().mean()
                                             for m, p in zip(self.distill_maps, pooled[:-1])]).mean()
            total = total + self.distill_weight * losses["distill"]
        losses["loss"] = total
        return losses

    def _trunk(self, h: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The encoder's blocks over tokens h: the last state and every exit's mean-pooled state."""
        pooled = []
        for h in through_blocks(self.encoder.blocks, h, self.layer_drop if self.training else 0.0, generator):
            pooled.append(h.mean(dim=1))
        return h, pooled
