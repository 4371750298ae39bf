"""Generation speed per task, single process: `xapp data bench`.

Reports wall-clock frames/s and CPU-time frames/s: on a shared machine the wall clock includes time
other processes held the cores, the CPU time (all threads of this process) does not.
"""

from __future__ import annotations

import time
from typing import Callable

from .tasks import TASKS, generate, pretrain_mixture


def best_of(work: Callable[[int], object], repeats: int) -> tuple[float, float]:
    """Best wall and best CPU seconds of `work(seed)` over seeds 1..repeats, after one warm-up."""
    work(0)  # warm caches and lazy imports
    wall = cpu = float("inf")
    for seed in range(1, repeats + 1):
        w, c = time.perf_counter(), time.process_time()
        work(seed)
        wall, cpu = min(wall, time.perf_counter() - w), min(cpu, time.process_time() - c)
    return wall, cpu


def run(n: int = 5000, repeats: int = 3, tasks: tuple[str, ...] | None = None) -> dict:
    rows = []
    for task in tasks or tuple(TASKS):
        wall, cpu = best_of(lambda seed: generate(task, n, seed), repeats)
        rows.append({
            "task": task,
            "frame": "x".join(map(str, TASKS[task].frame_shape)),
            "n": n,
            "frames_per_s": round(n / wall),
            "cpu_frames_per_s": round(n / max(cpu, 1e-9)),
        })
    mixture = {}
    for size in (128, 256):
        wall, cpu = best_of(lambda seed: pretrain_mixture(size, seed), repeats * 3)
        mixture[str(size)] = {"ms": round(wall * 1e3, 2), "cpu_ms": round(cpu * 1e3, 2)}
    return {"tasks": rows, "pretrain_mixture_per_call": mixture, "repeats": repeats, "timing": "best of repeats"}
