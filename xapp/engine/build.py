"""From the descriptor to what the serving path runs on: each task's plan (heads at their exits,
policy), the batching limits, the torch device and threads, and what a valid frame looks like."""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

from xapp.config import Descriptor, TaskSettings
from xapp.data import TASKS
from xapp.e2.types import FrameLimits
from xapp.engine.batcher import BatchLimits
from xapp.engine.runner import TaskPlan, load_plan
from xapp.model import Encoder
from xapp.model.policies import Policy


class DeviceError(Exception):
    """The descriptor's encoder.device is not usable on this machine."""


def engine_threads(requested: int | None = None) -> int:
    """Torch threads for the engine: as requested, else all cores but one, which the event loop
    (gRPC streams, validation, publishing) needs; on 2 cores this halves the online p99 at half load
    (`xapp bench --threads 2` vs `--threads 1`)."""
    return requested or max(1, (os.cpu_count() or 1) - 1)


def side_thread(device: torch.device) -> bool:
    """Whether the engine computes side features on a thread of its own, beside the trunk: on a CPU
    with a core to spare. In torch they cost as much time as the trunk's blocks at online batch sizes
    (op counts, not FLOPs), and overlapping them made a batch of 16-32 mixed frames 1.3-1.5x quicker
    (`python scripts/side_thread_ab.py`); their compiled kernels (session 19) cost 2-4x less and release
    the GIL, and the thread takes 15-23 % of a core online."""
    return device.type == "cpu" and (os.cpu_count() or 1) >= 2


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(f"encoder.device is {name} but CUDA is not available")
    return torch.device(name)


def frame_shapes(tasks: Mapping[str, TaskSettings]) -> dict[str, tuple[int, int]]:
    """(antennas, samples) of each task's frames as the E2 nodes are asked for them: `windows` of the
    heads' frames in a row along time."""
    return {name: (TASKS[name].frame_shape[0], TASKS[name].frame_shape[1] * spec.windows) for name, spec in tasks.items()}


def build_table(descriptor: Descriptor, encoder: Encoder) -> dict[str, TaskPlan]:
    """Load every enabled task's heads; raises PlanError naming the task and file."""
    table = {}
    for name, spec in descriptor.enabled_tasks.items():
        p = spec.policy
        heads = [(e.exit, e.head, e.sha256) for e in p.exits] if p.kind != "fixed" else []
        heads.append((spec.exit, spec.head, spec.sha256))
        policy = Policy(p.kind, p.threshold or 0.0, p.patience or 2)
        table[name] = load_plan(name, heads, policy, encoder, TASKS[name].classes, spec.windows,
                                tuple(TASKS[name].frame_shape))
    return table


def batch_limits(descriptor: Descriptor) -> BatchLimits:
    b = descriptor.batching
    return BatchLimits(b.max_batch, b.max_wait_ms, b.queue_limit)


def frame_limits(descriptor: Descriptor) -> FrameLimits:
    e2 = descriptor.e2
    return FrameLimits(e2.max_frame_bytes, frame_shapes(descriptor.enabled_tasks), descriptor.batching.deadline_ms,
                       max_clock_skew_s=e2.frame_checks.max_clock_skew_s, replay_window=e2.frame_checks.replay_window)
