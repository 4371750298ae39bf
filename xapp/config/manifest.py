"""The heads manifest (heads/manifest.yaml): which head file serves each task at each exit, with its
sha256 and metrics. Descriptors name it once; `xapp heads train` writes it."""

from __future__ import annotations

from pathlib import Path

import yaml


class ManifestError(Exception):
    """heads/manifest.yaml is missing, unreadable, or does not describe the heads asked for."""


def read_manifest(path: str | Path) -> dict:
    path = Path(path)
    try:
        manifest = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ManifestError(f"{path}: cannot read the heads manifest ({exc})") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("heads"), list) or "tasks" not in manifest:
        raise ManifestError(f"{path}: not a heads manifest (no `tasks` and `heads` lists); run `xapp heads train`")
    return manifest


def task_heads(manifest: dict, task: str, manifest_path: str | Path) -> list[dict]:
    """The manifest's head entries for one task, by exit, each with `path` resolved next to the manifest."""
    entries = sorted((h for h in manifest["heads"] if h["task"] == task), key=lambda h: h["exit"])
    if not entries:
        raise ManifestError(f"{manifest_path}: no heads for task {task!r}; it has {sorted(manifest['tasks'])}")
    base = Path(manifest_path).parent
    return [{**h, "path": base / h["file"]} for h in entries]


def head_at(manifest: dict, task: str, exit_: int, manifest_path: str | Path) -> dict:
    """The manifest's entry for `task` at `exit_` (with `path` resolved), or ManifestError naming the exits it has."""
    entries = task_heads(manifest, task, manifest_path)
    for entry in entries:
        if entry["exit"] == exit_:
            return entry
    raise ManifestError(f"{manifest_path} has no {task} head at exit {exit_} (it has exits "
                        f"{', '.join(str(e['exit']) for e in entries)})")
