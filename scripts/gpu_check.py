"""Checks of the CUDA path on a machine with a GPU (CI has none, so these never run there).

    python scripts/gpu_check.py --json gpu_check.json

1. Exit API on CUDA: the state at every exit of one pass equals the full forward's (fp32), and
   matches the CPU forward to fp32 tolerance.
2. bf16 autocast: the early-exit engine's decisions on CUDA (bf16) agree with the same engine on CPU
   (fp32), and their accuracy against the generator's labels.
3. Throughput: naive (full depth, per task) vs early exit on CUDA, both under bf16 autocast, at the
   descriptor's max batch and at larger batches.
4. Pre-training: a few MAE steps with frame views on CUDA give finite losses.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import torch

from xapp.engine.build import build_table
from xapp.config import load_descriptor
from xapp.harness.bench import bench_frames, early_exit_pass, offline
from xapp.engine.runner import EarlyExitEngine
from xapp.model import load_encoder
from xapp.model.config import EncoderConfig
from xapp.ops.metrics import Metrics
from xapp.train.pretrain import PretrainConfig, pretrain


def exit_states_match(cpu_encoder, cuda_encoder) -> dict:
    rng = np.random.default_rng(0)
    out = {}
    for shape in ((1, 1024), (16, 64)):
        x = (rng.standard_normal((8, *shape)) + 1j * rng.standard_normal((8, *shape))).astype(np.complex64)
        xt = torch.from_numpy(x)
        device = next(cuda_encoder.parameters()).device
        depth = cuda_encoder.cfg.depth
        with torch.inference_mode():
            states = cuda_encoder(xt.to(device), range(1, depth + 1))
            worst_exit = max(
                (states[k] - cuda_encoder(xt.to(device), [k])[k]).abs().max().item() for k in range(1, depth + 1)
            )
            reference = cpu_encoder(xt, [depth])[depth]
            worst_cpu = (states[depth].cpu() - reference).abs().max().item()
        out[f"{shape[0]}x{shape[1]}"] = {"exit_vs_full_max_abs": worst_exit, "cuda_vs_cpu_max_abs": worst_cpu}
    return out


def bf16_agreement(descriptor, cpu_encoder, cuda_encoder) -> dict:
    cpu_table, cuda_table = build_table(descriptor, cpu_encoder), build_table(descriptor, cuda_encoder)
    frames = bench_frames(list(cpu_table), 256, seed=99)
    _, on_cpu = early_exit_pass(EarlyExitEngine(cpu_encoder, Metrics()), cpu_table, frames, 32)
    _, on_cuda = early_exit_pass(EarlyExitEngine(cuda_encoder, Metrics()), cuda_table, frames, 32)
    key = lambda d: (d.task, d.seq)  # noqa: E731
    cpu_by, cuda_by = {key(d): d for d in on_cpu}, {key(d): d for d in on_cuda}
    result = {}
    for task in cpu_table:
        keys = [k for k in cpu_by if k[0] == task]
        result[task] = {
            "frames": len(keys),
            "agreement": float(np.mean([cpu_by[k].label == cuda_by[k].label for k in keys])),
            "accuracy_cpu_fp32": float(np.mean([cpu_by[k].label == cpu_by[k].truth for k in keys])),
            "accuracy_cuda_bf16": float(np.mean([cuda_by[k].label == cuda_by[k].truth for k in keys])),
            "exit_cpu": float(np.mean([cpu_by[k].exit for k in keys])),
            "exit_cuda": float(np.mean([cuda_by[k].exit for k in keys])),
        }
    return result


def throughput(descriptor, cuda_encoder, batches: list[int]) -> list[dict]:
    table = build_table(descriptor, cuda_encoder)
    rows = []
    for max_batch in batches:
        frames = bench_frames(list(table), max(4 * max_batch, 512), seed=7)
        r = offline(cuda_encoder, table, frames, max_batch)
        rows.append({k: r[k] for k in ("max_batch", "frames", "naive_frames_per_s", "early_exit_frames_per_s",
                                        "speedup_measured", "flop_ratio", "early_exit_accuracy")})
    return rows


def pretrain_steps(device: str) -> dict:
    cfg = PretrainConfig(encoder=EncoderConfig(), steps=20, batch=128, warmup=5, checkpoint_every=20,
                         frame_weight=1.0)
    with tempfile.TemporaryDirectory() as run:
        start = time.perf_counter()
        _, state = pretrain(cfg, run, device=device, progress=False)
        seconds = time.perf_counter() - start
    return {"steps": state["step"], "seconds": seconds, "first_loss": state["losses"][0],
            "last_loss": state["losses"][-1], "finite": bool(np.isfinite(state["losses"]).all())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--descriptor", default="descriptors/default.yaml")
    parser.add_argument("--device", default="cuda", help="cpu only to dry-run this script without a GPU")
    parser.add_argument("--batches", default="32,128,512")
    parser.add_argument("--json", default="gpu_check.json")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: these checks need a GPU")
    descriptor = load_descriptor(args.descriptor)
    cpu_encoder = load_encoder(descriptor.encoder.checkpoint, "cpu")
    cuda_encoder = load_encoder(descriptor.encoder.checkpoint, args.device)
    report: dict = {"device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu", "torch": torch.__version__}
    for name, check in (
        ("exit_states", lambda: exit_states_match(cpu_encoder, cuda_encoder)),
        ("bf16_decisions", lambda: bf16_agreement(descriptor, cpu_encoder, cuda_encoder)),
        ("throughput", lambda: throughput(descriptor, cuda_encoder, [int(b) for b in args.batches.split(",")])),
        ("pretrain", lambda: pretrain_steps(args.device)),
    ):
        start = time.perf_counter()
        try:
            report[name] = check()
        except Exception as exc:  # report every check, even when one breaks
            report[name] = {"error": f"{type(exc).__name__}: {exc}"}
        print(f"{name} ({time.perf_counter() - start:.1f} s): {json.dumps(report[name], indent=1)}", flush=True)
    with open(args.json, "w") as fh:
        json.dump(report, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
