"""`xapp bench --precision`: the engine at fp32, int8 (and bf16 where the CPU has it) against ONNX
Runtime fp32 and int8 as the peer, on the same frames, exits and batches, in one run.

Each variant serves the descriptor's tasks at their exits; variants take turns chunk by chunk in
every repeat, so a machine whose load changes slows all alike. Reported per variant: frames/s,
speed-up over fp32 eager (median of the per-repeat ratios), agreement of its decisions with fp32's
(same class for the same frame) and accuracy per task against the generators' labels.

On ONNX Runtime the engine runs each block as a session of its own (`encoder.runtime: onnxruntime`,
xapp.engine.onnx_blocks); tokens, heads and side features stay in torch.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Callable

import numpy as np

from xapp.engine.precision import RuntimeMissing, cpu_has_bf16
from xapp.engine.runner import EarlyExitEngine, TaskTable
from xapp.model import Encoder
from xapp.ops.metrics import Metrics
from xapp.vocab import Request

Serve = Callable[[list[Request]], dict[tuple[str, int], int]]  # frames -> {(task, seq): class index}
REPEATS = 3


def engine_variant(encoder: Encoder, table: TaskTable, precision: str, runtime: str = "torch") -> Serve:
    engine = EarlyExitEngine(encoder, Metrics(), precision, runtime=runtime)

    def serve(batch: list[Request]) -> dict[tuple[str, int], int]:
        out: dict[tuple[str, int], int] = {}

        def keep(decisions) -> None:
            out.update(zip(zip(decisions.task, decisions.seq), decisions.class_index))

        engine.run(batch, table, keep)
        return out

    return serve


def variants(encoder: Encoder, table: TaskTable) -> dict[str, Serve]:
    """Every (runtime, precision) this machine can run, torch fp32 first (the reference); names are
    "engine P" on torch and "onnxruntime P" on ONNX Runtime (left out where it is not installed)."""
    out = {f"engine {p}": engine_variant(encoder, table, p) for p in ("fp32", "int8")}
    if cpu_has_bf16():
        out["engine bf16"] = engine_variant(encoder, table, "bf16")
    for p in ("fp32", "int8"):
        try:
            out[f"onnxruntime {p}"] = engine_variant(encoder, table, p, "onnxruntime")
        except RuntimeMissing:
            break
    return out


def compare(encoder: Encoder, table: TaskTable, frames: list[Request], max_batch: int) -> dict:
    """Frames/s, speed-up over fp32 eager, agreement with fp32 and accuracy per task, per variant."""
    truth = {(r.task, r.seq): r.label for r in frames}
    chunks = [frames[i : i + max_batch] for i in range(0, len(frames), max_batch)]
    serves = variants(encoder, table)
    for serve in serves.values():
        serve(chunks[0])  # warm-up
    seconds: dict[str, list[float]] = {name: [] for name in serves}
    decided: dict[str, dict[tuple[str, int], int]] = {name: {} for name in serves}
    for _ in range(REPEATS):
        spent = dict.fromkeys(serves, 0.0)
        for chunk in chunks:
            for name, serve in serves.items():
                start = time.perf_counter()
                decided[name].update(serve(chunk))
                spent[name] += time.perf_counter() - start
        for name, s in spent.items():
            seconds[name].append(s)
    reference = decided["engine fp32"]
    out = {}
    for name in serves:
        got = decided[name]
        if got.keys() != reference.keys():
            raise RuntimeError(f"{name} decided {len(got)} frames, fp32 {len(reference)}")
        per_task = defaultdict(list)
        for (task, seq), c in got.items():
            per_task[task].append(table[task].classes[c] == truth[(task, seq)])
        out[name] = {
            "frames_per_s": len(frames) / statistics.median(seconds[name]),
            "speedup_vs_fp32": statistics.median(a / b for a, b in zip(seconds["engine fp32"], seconds[name])),
            "agreement_with_fp32": float(np.mean([got[key] == c for key, c in reference.items()])),
            "accuracy": {task: float(np.mean(hits)) for task, hits in sorted(per_task.items())},
        }
    return {"frames": len(frames), "max_batch": max_batch, "repeats": REPEATS,
            "exits": {t: p.exit for t, p in table.items()}, "variants": out}


def format_precision_table(result: dict) -> str:
    tasks = sorted(next(iter(result["variants"].values()))["accuracy"])
    lines = [f"precision and runtime (same {result['frames']} frames, batch {result['max_batch']}, exits {result['exits']})",
             f"{'variant':<20}{'frames/s':>10}{'vs fp32':>9}{'agree':>8}" + "".join(f"{t[:12]:>13}" for t in tasks)]
    for name, v in result["variants"].items():
        lines.append(f"{name:<20}{v['frames_per_s']:>10.1f}{v['speedup_vs_fp32']:>8.2f}x{100 * v['agreement_with_fp32']:>7.2f}%"
                     + "".join(f"{v['accuracy'][t]:>13.3f}" for t in tasks))
    return "\n".join(lines)


def choose(result: dict, min_agreement: float = 0.99) -> dict[str, str]:
    """The descriptor setting of the fastest variant whose decisions agree with fp32 on at least
    `min_agreement`: {"runtime": torch | onnxruntime, "precision": ...}."""
    agreeing = {n: v for n, v in result["variants"].items() if v["agreement_with_fp32"] >= min_agreement}
    runtime, precision = max(agreeing, key=lambda n: agreeing[n]["frames_per_s"]).split()
    return {"runtime": "torch" if runtime == "engine" else runtime, "precision": precision}
