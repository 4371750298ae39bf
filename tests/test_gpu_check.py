"""scripts/gpu_check.py end to end on CPU: every section but the CUDA-only calls (capture, pinned
copies, bf16), which only a GPU machine runs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e  # the slow tier: the whole script in a subprocess, 15-40 s on 2 cores

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_check_dry_run_on_cpu(tmp_path):
    out = tmp_path / "gc.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "scripts/gpu_check.py", "--device", "cpu", "--quick", "--json", str(out)],
                          cwd=ROOT, env=env, timeout=600, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    for section in ("exit_states", "bf16_decisions", "throughput", "peak", "e2e"):
        assert "error" not in report[section], report[section]
    assert report["bf16_decisions"]["static"]["beam"]["agreement"] == 1.0  # fp32 on CPU: same decisions
    rows = report["throughput"]
    assert [r["max_batch"] for r in rows] == [32, 64]
    for r in rows:
        assert r["static_eager_decision_agreement"] == 1.0
        assert r["flop_ratio"] > 1.0 and r["early_exit_static_frames_per_s"] > 0
        assert r["early_exit_static_graphs_only_frames_per_s"] > 0 and r["speedup_graphs_only"] > 0
    assert len(report["peak"]["per_batch"]) == 2
    runs = report["e2e"]["runs"]
    assert [(r["engine"], r["max_batch"], r["wire"], r["frames_per_indication"]) for r in runs] == [
        ("static", 32, "decision", 1), ("static", 64, "decision", 1), ("eager", 64, "decision", 1), ("static", 64, "batch", 8)]
    for run in runs:
        assert run["frames_offered"] > 0 and run["decisions"] + run["lost"] == run["frames_offered"], run
