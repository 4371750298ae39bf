"""Frozen-encoder features for many frames at many exits, computed in one pass per chunk."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from xapp.model.encoder import Encoder


@torch.inference_mode()
def exit_states(encoder: Encoder, x: np.ndarray, exits: Sequence[int], chunk: int = 256,
                pool: bool = False, dtype: torch.dtype = torch.float16,
                keep_on_device: bool = False) -> dict[int, torch.Tensor]:
    """Hidden states at each exit for frames x (complex64 [N, A, S]): [N, T, D] (or [N, D] mean-pooled),
    on the CPU unless `keep_on_device`."""
    device = next(encoder.parameters()).device
    out: dict[int, list[torch.Tensor]] = {k: [] for k in exits}
    for start in range(0, len(x), chunk):
        batch = torch.from_numpy(np.ascontiguousarray(x[start:start + chunk])).to(device)
        for k, h in encoder(batch, exits).items():
            h = (h.mean(dim=1) if pool else h).to(dtype)
            out[k].append(h if keep_on_device else h.cpu())
    return {k: torch.cat(v) for k, v in out.items()}
