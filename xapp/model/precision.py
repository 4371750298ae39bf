"""The numeric precision the encoder and heads run at on each device."""

from __future__ import annotations

import contextlib

import torch


def device_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (weights stay fp32 in memory); plain fp32 elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
