"""Works from anywhere: a non-editable wheel, installed in a fresh virtualenv, run from an empty
directory outside the source tree, finds the shipped encoder, heads, manifest and descriptor.

The fresh virtualenv gets the package from the wheel only; its dependencies (torch, grpc, ...) come
from this environment's site-packages through a .pth line, which adds that directory to sys.path
but runs none of its .pth files, so the editable install of the source tree stays out of it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from xapp.model.checkpoint import read_config

pytestmark = pytest.mark.e2e  # the slow end-to-end tier: real processes, sockets, the whole xApp

REPO = Path(__file__).resolve().parents[1]
LEFT_OUT = shutil.ignore_patterns(".git", ".venv", "build", "dist", "runs", "*.egg-info", "__pycache__", ".pytest_cache", "_shipped")


def test_wheel_serves_the_shipped_heads_from_an_empty_directory(tmp_path: Path) -> None:
    source = tmp_path / "source"  # a copy, so the build writes nothing into the working tree
    shutil.copytree(REPO, source, ignore=LEFT_OUT, symlinks=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", tmp_path / "dist",
                    source], check=True, timeout=300, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("xapp-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=120)
    site = Path(subprocess.run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "-q", "--no-deps",
                    "--no-index", wheel], check=True, timeout=300, capture_output=True)
    shutil.rmtree(source)

    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "XAPP_HOME", "CONFIG_FILE")}

    def xapp(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run([venv / "bin" / "xapp", *args], cwd=empty, env=env, capture_output=True, text=True, timeout=timeout)

    where = subprocess.run([venv / "bin" / "python", "-c", "import xapp; print(xapp.__file__)"], cwd=empty, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(site), where

    demo = xapp("demo", "--seconds", "3", "--threads", "1")
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert f"descriptor  {site / 'xapp' / '_shipped' / 'descriptors' / 'default.yaml'}" in demo.stdout
    assert "xapp demo: " in demo.stdout and "frames in 0," not in demo.stdout

    assert xapp("data", "generate", "--task", "modulation", "--n", "220", "--seed", "3", "--out", "F.npz").returncode == 0
    scored = xapp("eval", "--task", "modulation", "--data", "F.npz", "--json")
    assert scored.returncode == 0, scored.stderr[-3000:]
    rows = json.loads(scored.stdout)["exits"]
    depth = read_config(REPO / "xapp" / "assets" / "encoder.safetensors").depth
    # above chance (1/11): the trained heads, not random ones (the shipped ones score ~16 % on the broad data)
    assert len(rows) == depth and max(r["accuracy"] for r in rows) > 1.4 / 11
    assert not list(empty.glob("heads")) and sorted(p.name for p in empty.iterdir()) == ["F.npz"]
