"""Where the shipped heads, manifest and descriptors live, so that the command line finds them from
any directory: next to the package in a source checkout or editable install, inside it
(xapp/_shipped, copied there when the wheel is built) in an installed wheel. `XAPP_HOME` points at an
operator's own tree (with heads/ and descriptors/) instead."""

from __future__ import annotations

import os
from pathlib import Path

from xapp.config.descriptor import descriptor_path_from_env

HOME_ENV = "XAPP_HOME"
PACKAGE = Path(__file__).resolve().parent.parent
BUNDLED = PACKAGE / "_shipped"  # filled by setup.py's build_py
DESCRIPTOR_HELP = "default: $CONFIG_FILE, else the shipped descriptors/default.yaml"


def shipped_root() -> Path:
    """The directory holding heads/ and descriptors/ (relative paths in them resolve against it)."""
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV])
    checkout = PACKAGE.parent
    if (checkout / "heads" / "manifest.yaml").is_file() and (checkout / "descriptors").is_dir():
        return checkout
    return BUNDLED


def default_descriptor() -> Path:
    return shipped_root() / "descriptors" / "default.yaml"


def default_manifest() -> Path:
    return shipped_root() / "heads" / "manifest.yaml"


def descriptor_argument(value: str | Path | None) -> Path:
    """A command's --descriptor as given, else $CONFIG_FILE, else the shipped default (found from any directory)."""
    return Path(value) if value else descriptor_path_from_env(default_descriptor())
