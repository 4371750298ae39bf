"""Save and load the frozen encoder shipped in xapp/assets/."""

from __future__ import annotations

from pathlib import Path

import torch

from xapp.model.config import EncoderConfig
from xapp.model.encoder import Encoder
from xapp.model.safefile import WeightsFileError, read_metadata, read_weights, write_weights

ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEFAULT_ENCODER = ASSETS / "encoder.safetensors"
FORMAT = "xapp-encoder-v1"


def save_encoder(path: str | Path, encoder: Encoder, dtype: torch.dtype = torch.float16, **metadata) -> str:
    tensors = {k: v.to(dtype) for k, v in encoder.state_dict().items()}
    meta = {"format": FORMAT, "config": encoder.cfg.to_dict(), "dtype": str(dtype), **metadata}
    return write_weights(path, tensors, meta)


def read_config(path: str | Path) -> EncoderConfig:
    """The encoder config recorded in a checkpoint's header (the weights are not read)."""
    return _config_from(path, read_metadata(path))


def load_encoder(path: str | Path | None = None, device: str = "cpu", sha256: str | None = None) -> Encoder:
    """Load a frozen encoder in eval mode. Raises WeightsFileError naming the file and what is wrong."""
    path = Path(path) if path is not None else DEFAULT_ENCODER
    tensors, meta = read_weights(path, sha256)
    encoder = Encoder(_config_from(path, meta))
    expected = encoder.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = sorted(k for k in set(expected) & set(tensors) if expected[k].shape != tensors[k].shape)
    if missing or unexpected or wrong:
        raise WeightsFileError(
            f"{path}: checkpoint does not match its config: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}, wrong shape {wrong[:5]}"
        )
    encoder.load_state_dict({k: v.float() for k, v in tensors.items()})
    encoder.requires_grad_(False)
    return encoder.eval().to(device)


def _config_from(path: str | Path, meta: dict) -> EncoderConfig:
    if meta.get("format") != FORMAT:
        raise WeightsFileError(f"{path}: not an encoder checkpoint (format {meta.get('format')!r}, want {FORMAT!r})")
    try:
        return EncoderConfig.from_dict(meta["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsFileError(f"{path}: bad encoder config in header ({exc})") from exc
