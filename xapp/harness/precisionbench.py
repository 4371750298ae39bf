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

import torch

from xapp.engine.choose import AUTO, Setting, agreement_bound, candidates, choose, compare
from xapp.engine.runner import TaskTable
from xapp.model import Encoder
from xapp.vocab import Request

REPEATS = 3


def variants(device: torch.device) -> list[Setting]:
    """Every (runtime, precision) this machine can run (ONNX Runtime's where it is installed)."""
    return candidates(AUTO, AUTO, device)


def measure(encoder: Encoder, table: TaskTable, frames: list[Request], max_batch: int, min_agreement: float) -> dict:
    """`compare` over every variant, the result naming the setting `auto` would choose."""
    settings = variants(next(encoder.parameters()).device)
    result = compare(encoder, table, frames, max_batch, settings, REPEATS)
    chosen = choose(result, min_agreement, settings)
    return result | {"chosen": {"runtime": chosen.runtime, "precision": chosen.precision}}


def format_precision_table(result: dict) -> str:
    tasks = sorted(next(iter(result["variants"].values()))["accuracy"])
    lines = [f"precision and runtime (same {result['frames']} frames, batch {result['max_batch']}, exits {result['exits']})",
             f"{'variant':<20}{'frames/s':>10}{'vs fp32':>9}{'agree':>8}{'>= (95 %)':>10}" + "".join(f"{t[:12]:>13}" for t in tasks)]
    for name, v in result["variants"].items():
        bound = agreement_bound(v["agreement_with_fp32"], result["frames"])
        lines.append(f"{name:<20}{v['frames_per_s']:>10.1f}{v['speedup_vs_fp32']:>8.2f}x{100 * v['agreement_with_fp32']:>7.2f}%"
                     f"{100 * bound:>9.2f}%" + "".join(f"{v['accuracy'][t]:>13.3f}" for t in tasks))
    lines.extend(f"{name:<20}cannot run here: {why}" for name, why in result.get("failed", {}).items())
    return "\n".join(lines)
