"""Dynamic-exit baselines evaluated honestly: through the serving engine itself.

Each frame goes through xapp.engine.runner.EarlyExitEngine in batches, exactly as the xApp serves it:
after every block the heads there read the rows still in the batch, rows whose policy is satisfied
(xapp.model.policies) leave, and the next block runs on the remaining rows only. So the FLOPs a
threshold saves are FLOPs not computed, and the wall time is measured, not derived. Forward
pre-hooks on the blocks count the rows each block really processed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from xapp.engine.runner import EarlyExitEngine, TaskPlan
from xapp.model import Encoder, Head
from xapp.model.flops import block_flops, patch_embed_flops
from xapp.model.heads import side_flops_once
from xapp.model.policies import Policy
from xapp.ops.metrics import Metrics
from xapp.vocab import Request

# Strictest first: each step lets more rows leave early.
SWEEPS: dict[str, tuple[float, ...]] = {
    "entropy": (0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.65, 0.8, 0.9),
    "confidence": (0.999, 0.99, 0.95, 0.9, 0.8, 0.65, 0.5, 0.35, 0.2),
}


def patience_sweep(depth: int) -> tuple[int, ...]:
    return tuple(range(depth - 1, 1, -1))


def sweep_size(depth: int) -> int:
    """Engine runs `sweep_task` makes for an encoder of this depth (fixed at every exit, then the sweeps)."""
    return depth + sum(len(v) for v in SWEEPS.values()) + len(patience_sweep(depth))


@dataclass(frozen=True)
class PolicyRun:
    policy: str
    setting: float | None  # threshold, patience, or the exit of a fixed run
    accuracy: float
    mean_gflops: float  # per frame, as the engine accounts it (encoder to the exit + every head read)
    seconds: float  # wall time of the whole run through the engine
    frames: int
    rows_per_block: list[int]  # rows each encoder block processed, summed over batches
    exits: list[int] = field(repr=False)  # exit each frame left at
    pred: list[int] = field(repr=False)

    @property
    def ms_per_frame(self) -> float:
        return 1000 * self.seconds / self.frames

    def summary(self) -> dict:
        counts = np.bincount(self.exits, minlength=len(self.rows_per_block) + 1)[1:]
        return {"policy": self.policy, "setting": self.setting, "accuracy": self.accuracy,
                "mean_gflops": self.mean_gflops, "ms_per_frame": self.ms_per_frame, "frames": self.frames,
                "rows_per_block": self.rows_per_block, "exit_counts": counts.tolist()}


def run_policy(encoder: Encoder, task: str, classes: Sequence[str], heads: Mapping[int, Head], policy: Policy,
               x: np.ndarray, y: np.ndarray, batch: int = 64, setting: float | None = None) -> PolicyRun:
    """Serve frames x through the engine with `heads` (one for fixed; the earlier exits plus the last
    for a dynamic policy) and score the decisions against y."""
    plan = TaskPlan(task, tuple(classes), dict(sorted(heads.items())), policy)
    engine = EarlyExitEngine(encoder, Metrics())
    rows = [0] * encoder.cfg.depth
    hooks = [block.register_forward_pre_hook(_counter(rows, k)) for k, block in enumerate(encoder.blocks)]
    decisions = []
    frames = [Request("eval", task, x[i], i, "eval", 0, 0.0, math.inf) for i in range(len(x))]
    try:
        start = time.perf_counter()
        for i in range(0, len(frames), batch):
            engine.run(frames[i:i + batch], {task: plan}, decisions.extend)
        seconds = time.perf_counter() - start
    finally:
        for hook in hooks:
            hook.remove()
    decisions.sort(key=lambda d: d.seq)
    if [d.seq for d in decisions] != list(range(len(x))):
        raise RuntimeError(f"engine returned {len(decisions)} decisions for {len(x)} frames")
    pred = np.array([d.class_index for d in decisions])
    return PolicyRun(policy.kind, setting, float((pred == y).mean()), float(np.mean([d.gflops for d in decisions])),
                     seconds, len(x), rows, [d.exit for d in decisions], pred.tolist())


def _counter(rows: list[int], index: int):
    def hook(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        rows[index] += args[0].shape[0]

    return hook


def computed_gflops(encoder: Encoder, run: PolicyRun, heads: Mapping[int, Head], tokens: int) -> float:
    """Mean GFLOPs per frame recomputed from the rows the blocks actually processed (every row that
    came out of block k was read by the head at k, if any): the check that the engine's per-decision
    accounting matches the work done."""
    cfg = encoder.cfg
    work = run.frames * patch_embed_flops(cfg, tokens) + sum(run.rows_per_block) * block_flops(cfg, tokens)
    work += sum(run.rows_per_block[k - 1] * (h.flops(tokens) - h.side_flops) for k, h in heads.items())
    work += run.frames * side_flops_once(heads.values())  # each kind once per frame, before the trunk
    return work / 1e9 / run.frames


def sweep_task(encoder: Encoder, task: str, classes: Sequence[str], heads: Mapping[int, Head], x: np.ndarray,
               y: np.ndarray, batch: int = 64, progress=None) -> dict[str, list[PolicyRun]]:
    """Fixed runs at every exit and each dynamic policy over its threshold sweep, on the same frames."""
    depth = max(heads)
    jobs: list[tuple[str, Policy, dict[int, Head], float]] = [
        ("fixed", Policy("fixed"), {k: heads[k]}, k) for k in sorted(heads)
    ]
    for kind, values in SWEEPS.items():
        jobs += [(kind, Policy(kind, threshold=t), dict(heads), t) for t in values]
    jobs += [("patience", Policy("patience", patience=p), dict(heads), p) for p in patience_sweep(depth)]
    runs: dict[str, list[PolicyRun]] = {}
    for kind, policy, used, setting in jobs:
        runs.setdefault(kind, []).append(run_policy(encoder, task, classes, used, policy, x, y, batch, setting))
        if progress is not None:
            progress.update(1)
    return runs


def accuracy_at(points: Sequence[tuple[float, float]], gflops: float) -> float | None:
    """Accuracy a dynamic curve reaches at `gflops` mean cost: linear interpolation along its upper
    (Pareto) envelope; None when the curve has no point that cheap."""
    front = pareto(points)
    if not front or gflops < front[0][0]:
        return None
    if gflops >= front[-1][0]:
        return front[-1][1]
    xs, ys = zip(*front)
    return float(np.interp(gflops, xs, ys))


def pareto(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """(cost, accuracy) points not beaten by a cheaper-or-equal, at-least-as-accurate one, by cost."""
    front: list[tuple[float, float]] = []
    for cost, acc in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or acc > front[-1][1]:
            front.append((cost, acc))
    return front
