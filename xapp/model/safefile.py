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
    """Write tensors with `metadata` (JSON-serialisable values) in the header; returns the file's sha256.
    The same tensors and metadata always give the same bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {key: json.dumps(value, sort_keys=True) for key, value in metadata.items()}
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path), metadata=header)
    _canonicalise_header(path)
    return sha256_file(path)


def _canonicalise_header(path: Path) -> None:
    """safetensors writes its header's metadata in hash-map order, which varies between processes;
    rewrite the header with sorted keys (offsets are relative to the data, so they stay valid)."""
    raw = path.read_bytes()
    length = int.from_bytes(raw[:8], "little")
    header = json.dumps(json.loads(raw[8:8 + length]), sort_keys=True, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    path.write_bytes(len(header).to_bytes(8, "little") + header + raw[8 + length:])


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
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsFileError(f"{path}: not a readable safetensors file ({exc})") from exc
    return tensors, read_metadata(path)


def read_metadata(path: str | Path) -> dict:
    """The metadata of a weights file, reading its header only."""
    try:
        with open(path, "rb") as fh:
            header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))
        return {key: json.loads(value) for key, value in header.get("__metadata__", {}).items()}
    except (OSError, ValueError) as exc:
        raise WeightsFileError(f"{path}: not a readable safetensors file ({exc})") from exc
