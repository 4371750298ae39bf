"""`xapp bench --precision`: the engine at fp32, int8 (and bf16 where the CPU has it) against ONNX
Runtime fp32 and int8 as the peer, on the same frames, exits and batches, in one run.

Each variant serves the descriptor's tasks at their exits; variants take turns chunk by chunk in
every repeat, so a machine whose load changes slows all alike. Reported per variant: frames/s,
speed-up over fp32 eager (median of the per-repeat ratios), agreement of its decisions with fp32's
(same class for the same frame) and accuracy per task against the generators' labels.

The ONNX Runtime peer runs the trunk as one session per segment between consecutive exits (rows
leave after their exit's segment, as in the engine); tokens and heads stay in torch. It serves fixed
exits only.
"""

from __future__ import annotations

import statistics
import logging
import tempfile
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from xapp.engine.precision import cpu_has_bf16
from xapp.engine.runner import EarlyExitEngine, TaskTable, by_frame_layout
from xapp.model import Encoder
from xapp.model.heads import read_head
from xapp.ops.metrics import Metrics
from xapp.vocab import Request

Serve = Callable[[list[Request]], dict[tuple[str, int], int]]  # frames -> {(task, seq): class index}
REPEATS = 3


def engine_variant(encoder: Encoder, table: TaskTable, precision: str) -> Serve:
    engine = EarlyExitEngine(encoder, Metrics(), precision)

    def serve(batch: list[Request]) -> dict[tuple[str, int], int]:
        out: dict[tuple[str, int], int] = {}

        def keep(decisions) -> None:
            out.update(zip(zip(decisions.task, decisions.seq), decisions.class_index))

        engine.run(batch, table, keep)
        return out

    return serve


class OrtTrunk:
    """The trunk's blocks as ONNX Runtime sessions, one per segment between consecutive exits."""

    def __init__(self, encoder: Encoder, table: TaskTable, workdir: Path, int8: bool, threads: int) -> None:
        import onnxruntime as ort

        if any(plan.policy.dynamic for plan in table.values()):
            raise ValueError("the ONNX Runtime peer serves fixed exits only")
        self.engine, self.table = EarlyExitEngine(encoder, Metrics()), table  # its tokens, same as the engine's
        self.exits = sorted({plan.exit for plan in table.values()})
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.sessions = []
        for start, stop in zip([0, *self.exits], self.exits):
            path = _export(nn.Sequential(*encoder.blocks[start:stop]).eval(), encoder.cfg.dim, workdir / f"blocks{start}-{stop}.onnx")
            if int8:
                path = _quantise(path)
            self.sessions.append(ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]))

    def __call__(self, batch: list[Request]) -> dict[tuple[str, int], int]:
        out: dict[tuple[str, int], int] = {}
        with torch.inference_mode():
            rows, tokens, _ = self.engine.embed(by_frame_layout(batch)[0])
            h = tokens.numpy()
            exits = np.array([self.table[r.task].exit for r in rows])
            alive = np.arange(len(rows))
            for k, session in zip(self.exits, self.sessions):
                h = session.run(None, {"h": h})[0]
                leaving = exits[alive] == k
                for task, plan in self.table.items():
                    if plan.exit != k:
                        continue
                    mine = np.flatnonzero(leaving & np.array([rows[i].task == task for i in alive]))
                    if len(mine):
                        frames = torch.from_numpy(np.stack([rows[i].frame for i in alive[mine]]))
                        labels = read_head(plan.heads[k], torch.from_numpy(h[mine]), frames).argmax(-1).tolist()
                        out.update(zip(((task, rows[i].seq) for i in alive[mine]), labels))
                h, alive = h[~leaving], alive[~leaving]
                if not len(alive):
                    break
        return out


def _export(module: nn.Module, dim: int, path: Path) -> Path:
    example = torch.zeros(2, 65, dim)
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation and tracer notes, every call
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(path), input_names=["h"], output_names=["out"],
                          dynamic_axes={"h": {0: "batch", 1: "tokens"}, "out": {0: "batch", 1: "tokens"}},
                          dynamo=False, opset_version=17)
    return path


def _quantise(path: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = path.with_suffix(".int8.onnx")
    quiet = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process, logged on the root logger
    try:
        quantize_dynamic(str(path), str(out), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        logging.getLogger().setLevel(quiet)
    return out


def ort_installed() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def variants(encoder: Encoder, table: TaskTable, workdir: Path) -> dict[str, Serve]:
    """Every variant this machine can run, fp32 eager first (the reference)."""
    out = {f"engine {p}": engine_variant(encoder, table, p) for p in ("fp32", "int8")}
    if cpu_has_bf16():
        out["engine bf16"] = engine_variant(encoder, table, "bf16")
    if ort_installed():
        for name, int8 in (("onnxruntime fp32", False), ("onnxruntime int8", True)):
            out[name] = OrtTrunk(encoder, table, workdir, int8, torch.get_num_threads())
    return out


def compare(encoder: Encoder, table: TaskTable, frames: list[Request], max_batch: int) -> dict:
    """Frames/s, speed-up over fp32 eager, agreement with fp32 and accuracy per task, per variant."""
    truth = {(r.task, r.seq): r.label for r in frames}
    chunks = [frames[i : i + max_batch] for i in range(0, len(frames), max_batch)]
    with tempfile.TemporaryDirectory() as tmp:
        serves = variants(encoder, table, Path(tmp))
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


def choose(result: dict, min_agreement: float = 0.99) -> str:
    """The fastest engine precision whose decisions agree with fp32 on at least `min_agreement`."""
    engines = {n: v for n, v in result["variants"].items() if n.startswith("engine ") and v["agreement_with_fp32"] >= min_agreement}
    return max(engines, key=lambda n: engines[n]["frames_per_s"]).removeprefix("engine ")

