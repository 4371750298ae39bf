"""The path rule: a relative path in a descriptor resolves against the parent of the descriptor's
directory, taken without resolving symlinks (descriptors/default.yaml -> the repo root;
/opt/ric/config/descriptor.yaml mounted from a ConfigMap -> /opt/ric, where the image keeps heads/)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def descriptor_root(path: str | os.PathLike[str]) -> Path:
    # abspath, not resolve(): a ConfigMap mount is a chain of symlinks into a timestamped directory.
    return Path(os.path.abspath(path)).parent.parent


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def resolve_path(root: Path, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else root / p


def encoder_checkpoint(root: Path, value: str | None) -> Path:
    from xapp.model.checkpoint import DEFAULT_ENCODER  # torch loads only when a descriptor is read

    return DEFAULT_ENCODER if value is None else resolve_path(root, value)
