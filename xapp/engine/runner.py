"""The early-exit engine: one trunk pass per batch, each task's head at its own exit.

For a batch the trunk runs block by block only as deep as the deepest exit any row needs. After
block k every task with a head at k reads its rows; rows that are done (their task's exit, or a
dynamic policy that is sure enough) are released to `release` at once and removed from the batch,
so later blocks only see the rows that still need them.

`run` is synchronous and meant for one dedicated worker thread; the task table it is given is an
immutable snapshot, so a hot reload swaps tables between batches and never inside one.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from xapp.engine.decision import Decision
from xapp.model.precision import device_autocast
from xapp.model.policies import Policy, confident, patience_update
from xapp.model import Encoder, Head, WeightsFileError, exit_flops
from xapp.model.heads import load_task_head
from xapp.ops.metrics import Metrics


class Frame(Protocol):
    node_id: str
    task: str
    frame: np.ndarray  # complex64 [antennas, samples]
    seq: int
    cell_id: str
    t_node_ns: int
    t_arrival: float  # time.monotonic()
    label: str | None  # ground truth, from simulators only


@dataclass(frozen=True)
class TaskPlan:
    """How one task is served: its heads by exit (ascending; the last is the task's exit) and policy."""

    task: str
    classes: tuple[str, ...]
    heads: Mapping[int, Head]
    policy: Policy = field(default_factory=Policy)

    def __post_init__(self) -> None:
        if not self.heads:
            raise PlanError(f"task {self.task}: no head")
        if not self.policy.dynamic and len(self.heads) != 1:
            raise PlanError(f"task {self.task}: a fixed policy reads exactly one exit, got {sorted(self.heads)}")
        for k, head in self.heads.items():
            if head.num_classes != len(self.classes):
                raise PlanError(f"task {self.task}: head at exit {k} has {head.num_classes} classes, want {len(self.classes)}")

    @property
    def exit(self) -> int:
        return max(self.heads)


TaskTable = Mapping[str, TaskPlan]


class PlanError(Exception):
    """A task cannot be served as configured (head missing, wrong task, classes or exit, ...)."""


def load_plan(
    task: str,
    heads: Sequence[tuple[int, str | Path, str | None]],
    policy: Policy,
    encoder: Encoder,
    classes: Sequence[str] | None = None,
) -> TaskPlan:
    """Load a task's heads [(exit, path, sha256)] and check each fits the task and the encoder."""
    loaded: dict[int, Head] = {}
    names: tuple[str, ...] | None = tuple(classes) if classes else None
    for k, path, sha in heads:
        if not 1 <= k <= encoder.cfg.depth:
            raise PlanError(f"task {task}: exit {k} outside the encoder's 1..{encoder.cfg.depth}")
        try:
            head, head_classes = load_task_head(path, sha, task, k, encoder.cfg.dim, names)
        except WeightsFileError as exc:
            raise PlanError(f"task {task}: {exc}") from exc
        names = names or head_classes
        loaded[k] = head.to(next(encoder.parameters()).device)
    return TaskPlan(task, names or (), dict(sorted(loaded.items())), policy)


@dataclass(frozen=True)
class BatchReport:
    rows: int
    deepest: int  # blocks run
    seconds: float
    skipped: int  # rows whose task had no plan


class EarlyExitEngine:
    def __init__(self, encoder: Encoder, metrics: Metrics) -> None:
        self.encoder = encoder
        self.device = next(encoder.parameters()).device
        self._metrics = metrics
        self._exit_gflops: dict[int, list[float]] = {}

    def exit_gflops(self, tokens: int) -> list[float]:
        """Encoder GFLOPs per frame to reach each exit, for frames of `tokens` tokens."""
        if tokens not in self._exit_gflops:
            self._exit_gflops[tokens] = [f / 1e9 for f in exit_flops(self.encoder.cfg, tokens)]
        return self._exit_gflops[tokens]

    def run(self, batch: Sequence[Frame], table: TaskTable, release: Callable[[list[Decision]], None]) -> BatchReport:
        start = time.perf_counter()
        served = [r for r in batch if r.task in table]
        for r in batch:
            if r.task not in table:
                self._metrics.frames_shed.labels(r.task, "no_task").inc()
        # Frames batch together when they have the same token count (64 patches for all default shapes).
        groups: dict[int, list[Frame]] = defaultdict(list)
        cfg = self.encoder.cfg
        for r in served:
            groups[cfg.tokens(*r.frame.shape)].append(r)
        deepest = 0
        with torch.inference_mode(), device_autocast(self.device):
            for tokens, rows in groups.items():
                deepest = max(deepest, self._run_group(rows, tokens, table, release))
        seconds = time.perf_counter() - start
        if served:
            self._metrics.exit_depth.observe(deepest)
            self._metrics.stage_latency.labels("compute").observe(seconds)
        return BatchReport(len(served), deepest, seconds, len(batch) - len(served))

    def _embed(self, rows: list[Frame]) -> tuple[list[Frame], torch.Tensor]:
        by_shape: dict[tuple[int, ...], list[Frame]] = defaultdict(list)
        for r in rows:
            by_shape[r.frame.shape].append(r)
        ordered, parts = [], []
        for same in by_shape.values():
            x = torch.from_numpy(np.stack([r.frame for r in same])).to(self.device)
            parts.append(self.encoder.tokens(x))
            ordered.extend(same)
        return ordered, torch.cat(parts) if len(parts) > 1 else parts[0]

    def _run_group(self, rows: list[Frame], tokens: int, table: TaskTable, release) -> int:
        rows, h = self._embed(rows)
        plans = [table[r.task] for r in rows]
        deepest = max(p.exit for p in plans)
        gflops = self.exit_gflops(tokens)
        head_cost = [0.0] * len(rows)  # head GFLOPs spent per row so far (dynamic rows read several)
        streak = torch.zeros(len(rows), dtype=torch.long)
        last = torch.full((len(rows),), -1, dtype=torch.long)
        alive = list(range(len(rows)))  # original row index of each row of h
        offset_ns = time.time_ns() - time.monotonic_ns()
        for k, block in enumerate(self.encoder.blocks[:deepest], start=1):
            h = block(h)
            by_task: dict[str, list[int]] = defaultdict(list)
            for pos, i in enumerate(alive):
                if k in plans[i].heads:
                    by_task[rows[i].task].append(pos)
            if not by_task:
                continue
            leaving: list[int] = []
            decisions: list[Decision] = []
            for task, positions in by_task.items():
                plan = table[task]
                head = plan.heads[k]
                rows_h = h if len(positions) == len(alive) else h[positions]
                probs = head(rows_h).float().softmax(dim=-1).cpu()
                conf, labels = probs.max(dim=-1)
                index = torch.tensor([alive[p] for p in positions])
                cost = head.flops(tokens) / 1e9
                if k == plan.exit:
                    stop = torch.ones(len(positions), dtype=torch.bool)
                elif plan.policy.kind == "patience":
                    streak[index], last[index] = patience_update(streak[index], last[index], labels)
                    stop = streak[index] >= plan.policy.patience
                else:
                    stop = confident(plan.policy, probs)
                now_ns = time.time_ns()
                label_list, conf_list = labels.tolist(), conf.tolist()
                for j, (pos, leaves) in enumerate(zip(positions, stop.tolist())):
                    i = alive[pos]
                    head_cost[i] += cost
                    if not leaves:
                        continue
                    leaving.append(pos)
                    r = rows[i]
                    c = label_list[j]
                    decisions.append(
                        Decision(
                            node_id=r.node_id,
                            task=r.task,
                            label=plan.classes[c],
                            class_index=c,
                            confidence=conf_list[j],
                            exit=k,
                            gflops=gflops[k - 1] + head_cost[i],
                            seq=r.seq,
                            cell_id=r.cell_id,
                            t_node_ns=r.t_node_ns,
                            t_arrival_ns=offset_ns + int(r.t_arrival * 1e9),
                            t_decision_ns=now_ns,
                            policy=plan.policy.kind,
                            truth=r.label,
                        )
                    )
                    self._metrics.decisions.labels(task, str(k)).inc()
            if decisions:
                release(decisions)
            if leaving:
                gone = set(leaving)
                keep = [pos for pos in range(len(alive)) if pos not in gone]
                if not keep:
                    return k
                h = h[keep]
                alive = [alive[pos] for pos in keep]
        return deepest
