"""The early-exit engine: one trunk pass per batch, each task's head at its own exit.

For a batch the trunk runs block by block only as deep as the deepest exit any row needs. Heads
that read side features of the raw frame (xapp.model.side) get them computed once per batch for their
task's rows (`side_inputs`). After block k every task with a head at k reads its rows; rows
that are done (their task's exit, or a dynamic policy that is sure enough) are released to `release`
at once and removed from the batch, so later blocks only see the rows that still need them.

A task whose plan reads `windows` > 1 gets captures that many times its heads' frame length: each is
cut into its windows, which run as consecutive rows of the trunk's states, and its head's
log-probabilities on them are fused into one decision (`Head.fuse_windows`). Row bookkeeping (`alive`)
stays one entry per frame; `first` maps each to its first row of the states.

Side features cost time well beyond their FLOPs (on a CPU about 1.4-11 ms for the symbols and
cancellation of 1-32 frames of each, in compiled kernels that release the GIL), so an engine built with
`side_thread` computes them on a second thread while the trunk runs, in stages by the exit that first
reads them (`side_stages`), deepest first; a head waits only for its own stage, and computes it itself
if the thread has not started it.

`run` is synchronous and meant for one dedicated worker thread; the task table it is given is an
immutable snapshot, so a hot reload swaps tables between batches and never inside one.
"""

from __future__ import annotations

import functools
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cached_property
from operator import attrgetter, itemgetter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from xapp.engine.precision import serving_autocast, serving_trunk
from xapp.model.policies import Policy, confident, patience_update
from xapp.model import Encoder, Head, WeightsFileError, exit_flops
from xapp.model.heads import load_task_head, side_flops_once
from xapp.model.patch import capture_windows
from xapp.model.side import RECEIVING, side_features_of
from xapp.ops.metrics import Metrics
from xapp.vocab import DecisionBatch, Request


@dataclass(frozen=True)
class TaskPlan:
    """How one task is served: its heads by exit (ascending; the last is the task's exit) and policy."""

    task: str
    classes: tuple[str, ...]
    heads: Mapping[int, Head]
    policy: Policy = field(default_factory=Policy)
    # A frame is `windows` of the heads' frames in a row along time (a longer capture), decided once from
    # its windows' log-probabilities (Head.fuse_windows); `frame_shape` is the heads' frame, when known.
    windows: int = 1
    frame_shape: tuple[int, int] | None = None
    _head_gflops: dict[tuple[int, int], float] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.heads:
            raise PlanError(f"task {self.task}: no head")
        if self.windows < 1:
            raise PlanError(f"task {self.task}: windows must be at least 1, got {self.windows}")
        if not self.policy.dynamic and len(self.heads) != 1:
            raise PlanError(f"task {self.task}: a fixed policy reads exactly one exit, got {sorted(self.heads)}")
        for k, head in self.heads.items():
            if head.num_classes != len(self.classes):
                raise PlanError(f"task {self.task}: head at exit {k} has {head.num_classes} classes, want {len(self.classes)}")

    @property
    def exit(self) -> int:
        return max(self.heads)

    @property
    def capture_shape(self) -> tuple[int, int] | None:
        """(antennas, samples) of the frames this task is served: `windows` of the heads' frames."""
        return None if self.frame_shape is None else (self.frame_shape[0], self.frame_shape[1] * self.windows)

    @cached_property
    def sides(self) -> dict[str, Head]:
        """One head per kind of side features this task's heads read (a dynamic plan's may read several)."""
        return {head.side: head for head in self.heads.values() if head.side is not None}

    @cached_property
    def side_flops(self) -> float:
        """FLOPs per frame of the side features its heads read, each kind computed once."""
        return side_flops_once(self.heads.values())

    def head_gflops(self, k: int, tokens: int) -> float:
        """GFLOPs per window of its head at exit k on `tokens` token states, side features left out
        (`side_flops` counts them once per frame); worked out once per (exit, tokens), not per batch."""
        key = k, tokens
        if key not in self._head_gflops:
            head = self.heads[k]
            self._head_gflops[key] = (head.flops(tokens) - head.side_flops) / 1e9
        return self._head_gflops[key]


TaskTable = Mapping[str, TaskPlan]


class PlanError(Exception):
    """A task cannot be served as configured (head missing, wrong task, classes or exit, ...)."""


def load_plan(
    task: str,
    heads: Sequence[tuple[int, str | Path, str | None]],
    policy: Policy,
    encoder: Encoder,
    classes: Sequence[str] | None = None,
    windows: int = 1,
    frame_shape: tuple[int, int] | None = None,
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
    return TaskPlan(task, names or (), dict(sorted(loaded.items())), policy, windows, frame_shape)


def stacked(frames: Sequence[np.ndarray], shape: tuple[int, ...], out: np.ndarray | None = None) -> np.ndarray:
    """Frames of one shape as one [n, *shape] array (into `out` when given). Complex64 frames, as
    decoded, are joined as bytes, a plain memcpy each (5-30 % quicker at 85-256 frames than
    np.concatenate, whose per-frame checks cost more than the copy); anything else is concatenated."""
    n = len(frames)
    if out is None and all(f.dtype == np.complex64 for f in frames):
        try:
            return np.frombuffer(bytearray().join(frames), dtype=np.complex64).reshape(n, *shape)
        except TypeError:  # a frame that is not C-contiguous has no bytes view
            pass
    flat = out.reshape(n * shape[0], *shape[1:]) if out is not None else None
    return np.concatenate(frames, out=flat).reshape(n, *shape)


@dataclass(frozen=True)
class BatchReport:
    rows: int
    deepest: int  # blocks run
    seconds: float
    skipped: int  # rows whose task had no plan


class EarlyExitEngine:
    def __init__(self, encoder: Encoder, metrics: Metrics, precision: str = "fp32", side_thread: bool = False,
                 runtime: str = "torch") -> None:
        """`precision`: fp32 | int8 | bf16, `runtime`: torch | onnxruntime for the blocks
        (xapp.engine.precision); raises PrecisionError if unsupported.
        `side_thread`: compute the heads' side features on a thread of their own, beside the trunk
        (same decisions; worth a spare core); `close` ends it."""
        self.device = next(encoder.parameters()).device
        self.encoder = serving_trunk(encoder, precision, runtime)
        self.precision = precision
        self._metrics = metrics
        self._exit_gflops: dict[int, list[float]] = {}
        self._side_executor = ThreadPoolExecutor(1, thread_name_prefix="side") if side_thread else None

    def close(self) -> None:
        """End the side-feature thread, if any, once its work is done."""
        if self._side_executor is not None:
            self._side_executor.shutdown(wait=True)

    def exit_gflops(self, tokens: int) -> list[float]:
        """Encoder GFLOPs per frame to reach each exit, for frames of `tokens` tokens."""
        if tokens not in self._exit_gflops:
            self._exit_gflops[tokens] = [f / 1e9 for f in exit_flops(self.encoder.cfg, tokens)]
        return self._exit_gflops[tokens]

    def run(self, batch: Sequence[Request], table: TaskTable, release: Callable[[DecisionBatch], None]) -> BatchReport:
        start = time.perf_counter()
        by_layout, unserved = by_frame_layout(batch, table)
        for r, reason in unserved:
            self._metrics.child(self._metrics.frames_shed, r.task, reason).inc()
        # Frames batch together when their windows have the same token count (64 patches for all default shapes).
        groups: dict[int, dict[Layout, list[Request]]] = defaultdict(dict)
        for (shape, windows), rows in by_layout.items():
            groups[self.encoder.cfg.tokens(shape[0], shape[1] // windows)][shape, windows] = rows
        deepest = 0
        with torch.inference_mode(), serving_autocast(self.device, self.precision):
            for tokens, shapes in groups.items():
                deepest = max(deepest, self.run_group(shapes, tokens, table, release))
        seconds = time.perf_counter() - start
        served = len(batch) - len(unserved)
        if served:
            self._metrics.exit_depth.observe(deepest)
            self._metrics.child(self._metrics.stage_latency, "compute").observe(seconds)
        return BatchReport(served, deepest, seconds, len(unserved))

    def stack(self, by_layout: Mapping[Layout, list[Request]]) -> tuple[list[Request], list[torch.Tensor]]:
        """Rows grouped by frame shape and windows (`by_frame_layout`) stacked per group, each frame's
        windows in a row; returns the rows in that order and each group's windows (on the device)."""
        ordered, frames = [], []
        for (shape, windows), same in by_layout.items():
            x = torch.from_numpy(stacked([r.frame for r in same], shape)).to(self.device)
            frames.append(x if windows == 1 else capture_windows(x, windows))
            ordered.extend(same)
        return ordered, frames

    def tokens(self, frames: Sequence[torch.Tensor]) -> torch.Tensor:
        """The trunk's input tokens of the groups `stack` returned, in their order."""
        parts = [self.encoder.tokens(x) for x in frames]
        return torch.cat(parts) if len(parts) > 1 else parts[0]

    def embed(self, by_layout: Mapping[Layout, list[Request]]
              ) -> tuple[list[Request], torch.Tensor, list[torch.Tensor]]:
        """`stack` and `tokens`: the rows, their input tokens and the stacked windows of each group."""
        rows, frames = self.stack(by_layout)
        return rows, self.tokens(frames), frames

    def run_group(self, shapes: Mapping[Layout, list[Request]], tokens: int, table: TaskTable, release) -> int:
        """Serve rows whose windows have `tokens` tokens each, grouped by frame layout; returns the deepest
        block run. Subclasses replace how."""
        rows, frames = self.stack(shapes)
        tasks = list(table)
        plans = [table[t] for t in tasks]
        number = {t: i for i, t in enumerate(tasks)}
        task_of = np.fromiter(map(number.__getitem__, map(_TASK, rows)), dtype=np.int64, count=len(rows))
        windowed = sum(map(len, frames)) > len(rows)  # some frames are read in several windows, each a row
        width = np.array([p.windows for p in plans])[task_of] if windowed else 1  # rows of h per frame
        side = self.side_inputs(frames, plans, np.repeat(task_of, width) if windowed else task_of)
        h = self.tokens(frames)  # after the side features are queued, so that the side thread starts first
        side_cost = np.array([p.side_flops / 1e9 for p in plans])
        deepest = max(plans[i].exit for i in set(task_of.tolist()))
        gflops = np.array(self.exit_gflops(tokens))
        # Head GFLOPs spent per row so far (dynamic rows read several): side features once, every stage is computed.
        head_cost = side_cost[task_of] * width
        streak = last = None  # per-row patience state, only when a patience policy is served
        if any(p.policy.kind == "patience" for p in plans):
            streak = torch.zeros(len(rows), dtype=torch.long, device=self.device)
            last = torch.full((len(rows),), -1, dtype=torch.long, device=self.device)
        alive = np.arange(len(rows))  # original row index of each row still served
        # With windows: each alive row's first row of h, and of the first h (where side features are)
        first = first_h = np.cumsum(width) - width if windowed else None
        offset_ns = time.time_ns() - time.monotonic_ns()
        for k, block in zip(range(1, deepest + 1), self.encoder.blocks):
            h = block(h)
            read, parts, stops = [], [], []
            for t, plan in enumerate(plans):
                if k not in plan.heads:
                    continue
                positions = np.flatnonzero(task_of[alive] == t)
                if len(positions):
                    at = spans(first[positions], plan.windows) if windowed else positions
                    rows_h = h if len(at) == len(h) else h.index_select(0, torch.from_numpy(at).to(self.device))
                    kind = plan.heads[k].side
                    at_first = spans(first_h[alive[positions]], plan.windows) if windowed else alive[positions]
                    rows_side = None if kind is None else side.get(t, kind).index_select(
                        0, torch.from_numpy(at_first).to(self.device))
                    label_conf, stop = self._read_head(plan, k, rows_h, rows_side, alive[positions], streak, last)
                    parts.append(label_conf)
                    stops.append(stop)
                    read.append((plan, positions))
            if not read:
                continue
            # One device-to-host copy per exit: label and confidence of every row read here, and whether
            # it leaves when a dynamic policy decides that (a row at its task's exit always leaves).
            out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
            if any(stop is not None for stop in stops):
                stop_row = torch.cat([torch.ones(p.shape[1], device=self.device) if stop is None else stop.float()
                                      for p, stop in zip(parts, stops)])
                out = torch.cat([out, stop_row[None]])
            values = out.cpu().numpy()
            label, confidence = values[0], values[1]
            for plan, p in read:
                head_cost[alive[p]] += plan.windows * plan.head_gflops(k, tokens)
            positions = read[0][1] if len(read) == 1 else np.concatenate([p for _, p in read])
            leaves = values[2].astype(bool) if len(values) > 2 else slice(None)
            leaving = positions[leaves]
            if len(leaving):
                release(self.build_decisions(rows, alive[leaving], plans, task_of, label[leaves].astype(np.int64),
                                             confidence[leaves], k, gflops[k - 1] * width + head_cost, offset_ns))
                if len(leaving) == len(alive):
                    return k
                staying = np.ones(len(alive), dtype=bool)
                staying[leaving] = False
                keep = np.flatnonzero(staying)
                if windowed:
                    kept_width = width[alive[keep]]
                    keep_h = spans(first[keep], kept_width)
                    first = np.cumsum(kept_width) - kept_width
                else:
                    keep_h = keep
                h = h.index_select(0, torch.from_numpy(keep_h).to(self.device))  # a quicker gather than h[keep] on CPU
                alive = alive[keep]
        return deepest

    def side_inputs(self, frames: Sequence[torch.Tensor], plans: Sequence[TaskPlan], task_of: np.ndarray) -> SideInputs:
        """The side features of the rows of each task (by number) whose heads read some, per kind, from the
        frames `stack` returned, in stages (`side_stages`), each computed once. Without a side thread they
        are computed here; with one they are queued on it, deepest first, and a head whose stage the
        thread has not started yet computes it itself, so the thread spends its time on the deep (costly)
        ones while the trunk runs."""
        present = set(task_of.tolist())
        stages = [{t: kinds for t, kinds in stage.items() if t in present} for stage in side_stages(plans)]
        stages = [stage for stage in stages if stage]
        computing = [_SideStage(functools.partial(self._side_stage, frames, task_of, stage)) for stage in stages]
        if self._side_executor is None:
            for stage in computing:
                stage.value()
        else:
            inference = torch.is_inference_mode_enabled()
            for stage in reversed(computing):
                stage.future = self._side_executor.submit(self._as_engine, inference, stage.compute)
        return SideInputs({(t, kind): computing[i] for i, stage in enumerate(stages)
                           for t, kinds in stage.items() for kind in kinds})

    def _as_engine(self, inference: bool, compute: Callable[[], dict]) -> dict:
        # torch's inference mode and autocast are per thread: the side thread enters the engine's
        with torch.inference_mode(inference), serving_autocast(self.device, self.precision):
            return compute()

    def _side_stage(self, frames: Sequence[torch.Tensor], task_of: np.ndarray, reading: Mapping[int, Sequence[str]]
                    ) -> dict[tuple[int, str], torch.Tensor]:
        """[rows, width] features on the device for each (task, kind) of `reading`, filled at the task's rows."""
        side: dict[tuple[int, str], torch.Tensor] = {}
        start = 0
        for x in frames:
            for t, kind, picked, features in side_features_by_task(x, task_of[start:start + len(x)], reading):
                if (t, kind) not in side:
                    side[t, kind] = torch.zeros(len(task_of), features.shape[1], device=self.device)
                side[t, kind].index_copy_(0, picked + start, features)
            start += len(x)
        return side

    @staticmethod
    def _read_head(plan: TaskPlan, k: int, rows_h: torch.Tensor, rows_side: torch.Tensor | None, index: np.ndarray,
                   streak: torch.Tensor | None, last: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """[2, rows]: label and confidence, still on the device; and whether each row leaves at exit
        k, or None when all do (k is the task's exit)."""
        head = plan.heads[k]
        logits = head(rows_h, rows_side).float()
        if plan.windows > 1:  # a frame's windows are consecutive rows: one decision over them
            logits = head.fuse_windows(logits, plan.windows)
        probs = logits.softmax(dim=-1)
        conf, labels = probs.max(dim=-1)
        if k == plan.exit:
            stop = None
        elif plan.policy.kind == "patience":
            i = torch.from_numpy(index).to(streak.device)
            streak[i], last[i] = patience_update(streak[i], last[i], labels)
            stop = streak[i] >= plan.policy.patience
        else:
            stop = confident(plan.policy, probs)
        return torch.stack([labels.float(), conf]), stop

    def build_decisions(self, rows: list[Request], index: np.ndarray, plans: list[TaskPlan], task_of: np.ndarray,
                        labels: np.ndarray, confidence: np.ndarray, k: int, gflops: np.ndarray, offset_ns: int) -> DecisionBatch:
        """The decisions of rows `index` (original positions) leaving at exit k, as columns. Built by
        C-level maps over the rows (no Python step per decision): the rows' own fields in one pass,
        the task's names through lookup tables."""
        n = len(index)
        picked = (rows[int(index[0])],) if n == 1 else itemgetter(*index.tolist())(rows)
        node_id, seq, cell_id, t_node_ns, t_arrival, truth = (list(c) for c in zip(*map(_DECISION_FIELDS, picked)))
        label_list = labels.tolist()
        task_index = task_of[index]
        first = int(task_index[0])
        if (task_index == first).all():
            plan = plans[first]
            tasks, policy = [plan.task] * n, [plan.policy.kind] * n
            names = list(map(plan.classes.__getitem__, label_list))
            self._metrics.child(self._metrics.decisions, plan.task, str(k)).inc(n)
        else:
            of_task = task_index.tolist()
            tasks = list(map([p.task for p in plans].__getitem__, of_task))
            policy = list(map([p.policy.kind for p in plans].__getitem__, of_task))
            names = list(map(tuple.__getitem__, map([p.classes for p in plans].__getitem__, of_task), label_list))
            for task, count in Counter(tasks).items():
                self._metrics.child(self._metrics.decisions, task, str(k)).inc(count)
        arrival_ns = (np.array(t_arrival) * 1e9).astype(np.int64) + offset_ns
        return DecisionBatch(
            node_id=node_id, task=tasks, label=names, class_index=label_list, confidence=confidence.tolist(),
            exit=[k] * n, gflops=gflops[index].tolist(), seq=seq, cell_id=cell_id, t_node_ns=t_node_ns,
            t_arrival_ns=arrival_ns.tolist(), t_decision_ns=[time.time_ns()] * n, policy=policy, truth=truth,
        )


_TASK = attrgetter("task")
Layout = tuple[tuple[int, ...], int]  # a frame shape and the windows each frame of it holds


def spans(first: np.ndarray, width: int | np.ndarray) -> np.ndarray:
    """Rows first[i] .. first[i] + width[i] - 1 of each i, in order (one width for all, or one each)."""
    width = np.broadcast_to(width, first.shape)
    return np.repeat(first - (np.cumsum(width) - width), width) + np.arange(int(width.sum()))
_DECISION_FIELDS = attrgetter("node_id", "seq", "cell_id", "t_node_ns", "t_arrival", "label")


class _SideStage:
    """One stage of side features: computed once, by the side thread if it has started it by the first
    `value`, else then by the caller."""

    def __init__(self, compute: Callable[[], dict[tuple[int, str], torch.Tensor]]) -> None:
        self.compute = compute
        self.future: Future | None = None
        self._value: dict[tuple[int, str], torch.Tensor] | None = None

    def value(self) -> dict[tuple[int, str], torch.Tensor]:
        if self._value is None:
            started = self.future is not None and not self.future.cancel()
            self._value = self.future.result() if started else self.compute()
        return self._value


class SideInputs:
    """A group's side features by (task number, kind); a (task, kind) no row of the group reads is absent."""

    def __init__(self, stages: Mapping[tuple[int, str], _SideStage]) -> None:
        self._stages = stages

    def get(self, t: int, kind: str) -> torch.Tensor:
        return self._stages[t, kind].value()[t, kind]


def side_stages(plans: Sequence[TaskPlan]) -> list[dict[int, list[str]]]:
    """The side features the plans' heads read, {task number: kinds}, in stages by the exit that first
    reads each (ascending). The kinds that read the blind receiver share one stage, the earliest any
    of them is read at, so that they share its pass (`side_features_of`)."""
    first: dict[tuple[int, str], int] = {}
    for t, plan in enumerate(plans):
        for k, head in plan.heads.items():
            if head.side is not None:
                first[t, head.side] = min(k, first.get((t, head.side), k))
    receiving = min((k for (_, kind), k in first.items() if kind in RECEIVING), default=0)
    stages: dict[int, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    for (t, kind), k in first.items():
        stages[receiving if kind in RECEIVING else k][t].append(kind)
    return [dict(stages[k]) for k in sorted(stages)]


def side_features_by_task(frames: torch.Tensor, of_task: np.ndarray, sides: Mapping[int, Sequence[str]]
                          ) -> Iterator[tuple[int, str, torch.Tensor, torch.Tensor]]:
    """For frames of one shape whose rows belong to tasks `of_task`: (task, kind, the rows' positions
    in `frames`, their side features) for each task in `sides` (task -> the kinds it reads),
    computed in one call (tasks whose kinds read the blind receiver share one pass of it)."""
    wanted = []
    for t, kinds in sides.items():
        mine = np.flatnonzero(of_task == t)
        if len(mine):
            picked = torch.from_numpy(mine).to(frames.device)
            chosen = frames.index_select(0, picked)
            wanted += [(t, kind, picked, chosen) for kind in kinds]
    features = side_features_of([(kind, chosen) for _, kind, _, chosen in wanted])
    for (t, kind, picked, _), f in zip(wanted, features):
        yield t, kind, picked, f


def by_frame_layout(rows: Iterable[Request], table: TaskTable | None = None
                    ) -> tuple[dict[Layout, list[Request]], list[tuple[Request, str]]]:
    """Rows grouped by their frame's shape and the windows their task's plan reads in it, in order of
    first appearance (without a table: one window each); and the rows not served, with why: no plan for
    their task, or a frame not of the shape the plan serves (queued before a reload changed its windows)."""
    groups: dict[Layout, list[Request]] = defaultdict(list)
    unserved: list[tuple[Request, str]] = []
    if table is None:
        for r in rows:
            groups[r.frame.shape, 1].append(r)
        return groups, unserved
    served = {task: (plan.capture_shape, plan.windows) for task, plan in table.items()}
    same: dict[str, tuple[tuple[int, int], list[Request]]] = {}  # task -> the shape its last row was served at, its group
    for r in rows:
        fast = same.get(r.task)
        if fast is not None and r.frame.shape == fast[0]:
            fast[1].append(r)
            continue
        want = served.get(r.task)
        if want is None:
            unserved.append((r, "no_task"))
        elif want[0] is None or r.frame.shape == want[0]:
            group = groups[r.frame.shape, want[1]]
            group.append(r)
            same[r.task] = r.frame.shape, group
        else:
            unserved.append((r, "shape"))
    return groups, unserved
