"""Static-graph serving of a fixed exit plan: the trunk as one captured graph per (exit, batch bucket).

With fixed exits every row's depth is known before the trunk runs. Rows are put in order of exit,
deepest first, so the rows still running after any exit are a prefix of the batch: the trunk segment
that ends at exit k runs in place on the first `bucket` rows of one static hidden-state buffer,
`bucket` being the smallest bucket that holds the rows reaching k. Padding rows are computed and
ignored (blocks and heads treat rows independently). A segment's blocks and the heads of the tasks
leaving at its exit are one CUDA graph, captured on first use and replayed after; frames reach the
device through a pinned staging buffer, and each batch's labels and confidences come back in one
device-to-host copy. Heads that read side features of the raw frame read them from one static
buffer per task, filled in the hidden states' row order before the graphs run. On CPU the same
segments run eagerly, so the bucketing, padding and row mapping are the code that the CPU tests hold
to the engine's decisions.
"""

from __future__ import annotations

import copy
import itertools
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from xapp.vocab import DecisionBatch, Request
from xapp.engine.runner import EarlyExitEngine, TaskPlan, TaskTable, side_features_by_task, stacked
from xapp.model import Encoder, Head
from xapp.ops.metrics import Metrics

# Steps of 1.5x and 2x: the rows going on past an exit are padded up to a bucket, so with powers of two
# alone a segment can run on up to twice its rows (at 683 rows of 1,024: 50 % padding; here 12 %).
BUCKETS = (32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)


class StaticGraphError(Exception):
    """The plan cannot be served from static graphs (a dynamic exit policy, no buckets, ...)."""


def bucket_for(rows: int, buckets: Sequence[int]) -> int:
    """The smallest bucket that holds `rows` rows."""
    for size in buckets:
        if rows <= size:
            return size
    raise StaticGraphError(f"{rows} rows exceed the largest bucket {buckets[-1]}")


def exit_order(exits: np.ndarray, task_of: np.ndarray) -> np.ndarray:
    """Row order deepest exit first, then by task: the rows still running after any exit are a
    prefix, and the rows of one task leaving at one exit are contiguous."""
    return np.lexsort((task_of, -exits))


@dataclass(frozen=True)
class Segment:
    """Blocks first_block+1..exit, then the heads of `tasks` (task numbers) that leave at `exit`."""

    first_block: int
    exit: int
    tasks: tuple[int, ...]


def segments(plans: Sequence[TaskPlan]) -> list[Segment]:
    exits = sorted({p.exit for p in plans})
    starts = [0, *exits[:-1]]
    return [Segment(s, k, tuple(t for t, p in enumerate(plans) if p.exit == k)) for s, k in zip(starts, exits)]


class StaticGraphEngine(EarlyExitEngine):
    """EarlyExitEngine for fixed exit plans with the trunk in static graphs (CUDA) or eager segments
    (CPU), same decisions. `dtype`: the trunk's weights and hidden states (default bf16 on CUDA,
    fp32 on CPU); heads run in fp32. Batches larger than the largest bucket are served in chunks."""

    def __init__(self, encoder: Encoder, metrics: Metrics, buckets: Sequence[int] = BUCKETS,
                 dtype: torch.dtype | None = None, capture: bool | None = None) -> None:
        super().__init__(encoder, metrics)
        if not buckets:
            raise StaticGraphError("no batch buckets")
        self.buckets = tuple(sorted(buckets))
        cuda = self.device.type == "cuda"
        self.dtype = dtype or (torch.bfloat16 if cuda else torch.float32)
        self.capture = cuda if capture is None else capture
        if self.capture and not cuda:
            raise StaticGraphError(f"graph capture needs CUDA, the encoder is on {self.device}")
        self.blocks = self.encoder.blocks
        if self.dtype != torch.float32:
            self.blocks = copy.deepcopy(self.encoder.blocks).to(self.dtype).requires_grad_(False)
        self._table: TaskTable | None = None
        self._segments: list[Segment] = []
        self._runners: dict[tuple[int, int, int], Callable[[], list[torch.Tensor]]] = {}
        self._hidden: dict[int, torch.Tensor] = {}  # tokens -> [largest bucket, tokens, dim]
        self._staging: dict[tuple[int, ...], torch.Tensor] = {}  # frame shape -> pinned host frames
        self._side: dict[int, torch.Tensor] = {}  # task number -> [largest bucket, width] side features
        self._side_heads: dict[int, dict[str, Head]] = {}  # task number -> {kind: its exit's head}

    @property
    def graphs(self) -> int:
        """Graphs captured so far (0 on CPU)."""
        return len(self._runners) if self.capture else 0

    def use(self, table: TaskTable) -> None:
        """Serve `table` from now on; its graphs are captured as batches first need them."""
        if table is self._table:
            return
        dynamic = [t for t, p in table.items() if p.policy.dynamic]
        if dynamic:
            raise StaticGraphError(f"tasks {dynamic}: static graphs serve fixed exits only")
        windowed = [t for t, p in table.items() if p.windows > 1]
        if windowed:
            raise StaticGraphError(f"tasks {windowed}: static graphs serve one window per frame")
        self._table, self._segments, self._runners = table, segments(list(table.values())), {}
        self._side_heads = {t: plan.sides for t, plan in enumerate(table.values()) if plan.sides}
        self._side = {t: torch.zeros(self.buckets[-1], plan.heads[plan.exit].side_width, device=self.device)
                      for t, plan in enumerate(table.values()) if plan.sides}

    def prepare(self, table: TaskTable, tokens: int, max_rows: int) -> None:
        """Capture now every graph that batches of up to `max_rows` rows of `tokens` tokens can need,
        so that no batch pays for a capture while serving."""
        self.use(table)
        with torch.inference_mode(), torch.autocast(self.device.type, enabled=False):
            self._buffer(tokens)
            for s in range(len(self._segments)):
                for bucket in self.buckets[: self.buckets.index(bucket_for(max_rows, self.buckets)) + 1]:
                    self._runner(tokens, s, bucket)

    def run_group(self, shapes: Mapping[tuple[int, ...], list[Request]], tokens: int, table: TaskTable, release) -> int:
        self.use(table)
        rows = [r for same in shapes.values() for r in same]
        largest = self.buckets[-1]
        deepest = 0
        # Graphs are captured (and run) without autocast: the trunk holds its own dtype, and autocast's
        # cast cache would be freed under a captured graph.
        with torch.autocast(self.device.type, enabled=False):
            for start in range(0, len(rows), largest):
                deepest = max(deepest, self._serve(rows[start:start + largest], tokens, table, release))
        return deepest

    def _serve(self, rows: list[Request], tokens: int, table: TaskTable, release: Callable[[DecisionBatch], None]) -> int:
        plans = list(table.values())
        number = {t: i for i, t in enumerate(table)}
        task_of = np.fromiter((number[r.task] for r in rows), dtype=np.int64, count=len(rows))
        plan_exit = np.array([p.exit for p in plans])
        exits = plan_exit[task_of]
        order = exit_order(exits, task_of)
        self._load(rows, order, tokens, task_of)
        sorted_exits = exits[order]
        parts, leaving, width = [], [], 0  # leaving: (exit, original rows, their columns in parts)
        for s, seg in enumerate(self._segments):
            reach = int(np.count_nonzero(sorted_exits >= seg.exit))
            if reach == 0:
                break
            outs = self._runner(tokens, s, bucket_for(reach, self.buckets))()
            for t, out in zip(seg.tasks, outs):
                mine = np.flatnonzero((sorted_exits == seg.exit) & (task_of[order] == t))
                if len(mine):
                    lo, hi = int(mine[0]), int(mine[-1]) + 1
                    parts.append(out[:, lo:hi])
                    leaving.append((seg.exit, order[lo:hi], np.arange(width, width + hi - lo)))
                    width += hi - lo
        label, confidence = (parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)).cpu().numpy()
        head_gflops = np.array([p.heads[p.exit].flops(tokens) / 1e9 for p in plans])
        gflops = np.array(self.exit_gflops(tokens))[exits - 1] + head_gflops[task_of]
        offset_ns = time.time_ns() - time.monotonic_ns()
        for k, group in itertools.groupby(leaving, key=lambda part: part[0]):  # segments run in exit order
            group = list(group)
            index = np.concatenate([i for _, i, _ in group])
            cols = np.concatenate([c for _, _, c in group])
            release(self.build_decisions(rows, index, plans, task_of, label[cols].astype(np.int64), confidence[cols], k,
                                         gflops, offset_ns))
        return int(exits.max())

    def _load(self, rows: list[Request], order: np.ndarray, tokens: int, task_of: np.ndarray) -> None:
        """Tokens of `rows` into the static hidden buffer in `order`, and the side features of the rows
        of tasks that read some into their buffers; the bucket's padding zeroed."""
        hidden = self._buffer(tokens)
        place = np.empty(len(rows), dtype=np.int64)
        place[order] = np.arange(len(rows))
        by_shape: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for i, r in enumerate(rows):
            by_shape[r.frame.shape].append(i)
        for shape, index in by_shape.items():
            frames = self._to_device(shape, [rows[i].frame for i in index])
            target = torch.from_numpy(place[index]).to(self.device)
            hidden.index_copy_(0, target, self.encoder.tokens(frames).to(self.dtype))
            for t, _, picked, features in side_features_by_task(frames, task_of[index], self._side_heads):
                self._side[t].index_copy_(0, target.index_select(0, picked), features)
        hidden[len(rows):bucket_for(len(rows), self.buckets)].zero_()

    def _buffer(self, tokens: int) -> torch.Tensor:
        hidden = self._hidden.get(tokens)
        if hidden is None:
            hidden = torch.zeros(self.buckets[-1], tokens, self.encoder.cfg.dim, dtype=self.dtype, device=self.device)
            self._hidden[tokens] = hidden
        return hidden

    def _to_device(self, shape: tuple[int, ...], frames: list[np.ndarray]) -> torch.Tensor:
        """Frames through a pinned staging buffer (non-blocking copy) on CUDA; as they are on CPU."""
        if self.device.type != "cuda":
            return torch.from_numpy(stacked(frames, shape))
        staging = self._staging.get(shape)
        if staging is None:
            staging = torch.empty((self.buckets[-1], *shape), dtype=torch.complex64, pin_memory=True)
            self._staging[shape] = staging
        stacked(frames, shape, out=staging[: len(frames)].numpy())
        return staging[: len(frames)].to(self.device, non_blocking=True)

    def _runner(self, tokens: int, s: int, bucket: int) -> Callable[[], list[torch.Tensor]]:
        key = (tokens, s, bucket)
        runner = self._runners.get(key)
        if runner is None:
            step = self._segment_step(self._hidden[tokens][:bucket], self._segments[s])
            runner = self._captured(step, self._hidden[tokens][:bucket]) if self.capture else step
            self._runners[key] = runner
        return runner

    def _segment_step(self, hidden: torch.Tensor, seg: Segment) -> Callable[[], list[torch.Tensor]]:
        """Blocks of `seg` in place on `hidden`, then [2, rows] (label, confidence) per leaving task."""
        blocks = self.blocks[seg.first_block:seg.exit]
        heads = [list(self._table.values())[t].heads[seg.exit] for t in seg.tasks]
        rows = hidden.shape[0]
        sides = [self._side[t][:rows] if t in self._side else None for t in seg.tasks]

        def step() -> list[torch.Tensor]:
            h = hidden
            for block in blocks:
                h = block(h)
            hidden.copy_(h)
            outs = []
            for head, side in zip(heads, sides):
                confidence, label = head(h.float(), side).softmax(dim=-1).max(dim=-1)
                outs.append(torch.stack([label.float(), confidence]))
            return outs

        return step

    @staticmethod
    def _captured(step: Callable[[], list[torch.Tensor]], hidden: torch.Tensor) -> Callable[[], list[torch.Tensor]]:
        """`step` as a CUDA graph: warmed up on a side stream (the buffer's contents kept), captured once."""
        saved = hidden.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outs = step()
        hidden.copy_(saved)

        def replay() -> list[torch.Tensor]:
            graph.replay()
            return outs

        return replay

