"""Weights on disk: safetensors only (never pickle), JSON metadata in the header, sha256 pinning."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file


class WeightsFileError(Exception):
    """A weights file is missing, corrupt, or does not match what the caller expects."""


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_weights(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict) -> str:
    """Write tensors with `metadata` (JSON-serialisable values) in the header; returns the file's sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {key: json.dumps(value) for key, value in metadata.items()}
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path), metadata=header)
    return sha256_file(path)


def read_weights(path: str | Path, sha256: str | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a weights file, verifying its sha256 first when one is pinned."""
    path = Path(path)
    if not path.is_file():
        raise WeightsFileError(f"{path}: no such weights file")
    if sha256 is not None:
        actual = sha256_file(path)
        if actual != sha256:
            raise WeightsFileError(f"{path}: sha256 {actual} does not match the pinned {sha256}")
    try:
        tensors = load_file(str(path))
        with open(path, "rb") as fh:
            header_len = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(header_len))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsFileError(f"{path}: not a readable safetensors file ({exc})") from exc
    metadata = {key: json.loads(value) for key, value in header.get("__metadata__", {}).items()}
    return tensors, metadata
