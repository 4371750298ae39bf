"""`xapp bench --host`: the serving path's host cost per frame, with a trunk too small to matter.

The trunk is the descriptor's encoder shape cut to width 4 with identity blocks, its heads random,
so what is left is the work a GPU cannot take off the host: decoding and validating Indications,
batching, launching the trunk and heads, building decisions and publishing them (ZMQ protobuf sends,
Redis field encoding, metrics; in both wire forms: a message and a stream entry per decision, or per
task and node of a batch). Each stage is timed on its own over the same frames, at each batch
size, in CPU time of the serving thread (so a loaded machine does not inflate it), and reported in
microseconds per frame.

The engine stage is split without instrumenting the engine: the trunk alone (tokens and blocks to
each row's exit) and the heads alone are timed on the same batch, and decision building is what the
full engine run takes beyond them.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import zmq
from torch import nn

from xapp.e2.e2sm_iq import frames_message, indication_message
from xapp.e2.frames import decode_indication, encode_indication
from xapp.e2.gen import e2sm_iq_pb2 as iq_pb2
from xapp.e2.types import FrameLimits
from xapp.engine.batcher import Batcher, BatchLimits
from xapp.engine.runner import EarlyExitEngine, TaskPlan, TaskTable, by_frame_layout
from xapp.model import Encoder, EncoderConfig, Head
from xapp.model.policies import Policy
from xapp.ops.decision_metrics import record_decisions
from xapp.ops.metrics import Metrics
from xapp.publish.fanout import serialised_once
from xapp.publish.redis_pub import RedisPublisher
from xapp.publish.zmq_pub import ZmqPublisher
from xapp.vocab import Request

BATCH_SIZES = (1, 32, 256, 512)
STAGES = ("decode_validate", "batching", "trunk_launch", "heads", "decision_building", "publish")
# Host overhead: what the host does per frame besides decoding and besides the arithmetic a device
# would do (token embedding of the I/Q, blocks, heads): batching, the engine with that arithmetic
# taken out (`engine_host`: stacking frames, launching every op, grouping rows, the copy back,
# decisions), and publishing (`publish`: the decision wire form, the default; `publish_batch`: the
# batch wire form, which `host_overhead_batch` counts instead).
HOST_OVERHEAD = ("batching", "engine_host", "publish")
HOST_OVERHEAD_BATCH = ("batching", "engine_host", "publish_batch")
MULTI_FRAME = 8  # frames per Indication of the multi-frame decode row
TRIVIAL_DIM = 4
NODES = 4


def trivial_encoder(cfg: EncoderConfig) -> Encoder:
    """The descriptor's encoder shape (depth, patching, layout) at width 4, its blocks identities: the
    trunk's arithmetic, which a GPU would do, drops out and the host work around it is what is left."""
    torch.manual_seed(0)
    encoder = Encoder(dataclasses.replace(cfg, dim=TRIVIAL_DIM, heads=1, mlp_ratio=1.0)).eval()
    encoder.blocks = nn.ModuleList(nn.Identity() for _ in encoder.blocks)
    return encoder


def trivial_table(encoder: Encoder, exits: Mapping[str, int], classes: Mapping[str, Sequence[str]]) -> TaskTable:
    torch.manual_seed(1)
    return {
        task: TaskPlan(task, tuple(classes[task]), {k: Head(encoder.cfg.dim, len(classes[task])).eval()}, Policy())
        for task, k in exits.items()
    }


class ArithmeticFreeTokens(nn.Module):
    """Stands in for the patch embedding: zero tokens of the shape it would return, so that the
    engine runs every host step around the token arithmetic without doing it."""

    def __init__(self, embed: nn.Module, dim: int) -> None:
        super().__init__()
        self.embed, self.dim = embed, dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows, cols = self.embed.grid(x.shape[1], x.shape[2])
        return torch.zeros(x.shape[0], rows * cols, self.dim, device=x.device)


class ArithmeticFreeHead(Head):
    """A head that returns zero logits of its shape: the engine still launches, reads and releases
    every row as with a real head."""

    def forward(self, h: torch.Tensor, side: torch.Tensor | None = None) -> torch.Tensor:
        return h.new_zeros(h.shape[0], self.num_classes)


def arithmetic_free(encoder: Encoder, table: TaskTable) -> tuple[Encoder, TaskTable]:
    """Copies of the trivial encoder and its table that do no arithmetic on frames or hidden states
    (token embedding and heads return zeros; the blocks are identities already), for timing the
    engine's host work alone."""
    free = copy.deepcopy(encoder)
    free.patch_embed = ArithmeticFreeTokens(free.patch_embed, encoder.cfg.dim)
    free_table = {task: dataclasses.replace(plan, heads={k: ArithmeticFreeHead(encoder.cfg.dim, len(plan.classes))
                                                         for k in plan.heads})
                  for task, plan in table.items()}
    return free, free_table


def indications(shapes: Mapping[str, tuple[int, int]], n: int, seed: int = 7, frames: int = 1) -> list:
    """`n` E2SM-IQ Indications round-robin over the tasks and NODES nodes, each of `frames` random
    unit-power frames (the single-frame form for 1)."""
    rng = np.random.default_rng(seed)
    tasks = list(shapes)
    out = []
    for i in range(n):
        task = tasks[i % len(tasks)]
        a, s = shapes[task]
        x = ((rng.standard_normal((frames, a, s)) + 1j * rng.standard_normal((frames, a, s))) / np.sqrt(2))
        header = iq_pb2.IndicationHeader(
            node_id=f"e2node-{i % NODES}", cell_id="cell0", sequence_number=i * frames, timestamp_ns=time.time_ns(),
            sample_rate_hz=30.72e6, center_frequency_hz=3.5e9, antennas=a, samples=s, task=task,
            frames=frames if frames > 1 else 0, frame_interval_ns=1000 if frames > 1 else 0,
        )
        payload = x.astype(np.complex64).tobytes()
        message = indication_message(payload) if frames == 1 else frames_message(payload, [], [])
        out.append(encode_indication(header, message).indication)
    return out


def zmq_loopback(metrics: Metrics) -> tuple[zmq.Context, ZmqPublisher, zmq.Socket]:
    """A ZMQ publisher on a free local port and a subscriber to everything it sends, already joined
    (so that sends are real sends); the caller closes all three."""
    context = zmq.Context()
    publisher = ZmqPublisher("tcp://127.0.0.1:*", metrics, context=context, hwm=1 << 20)
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.setsockopt(zmq.RCVHWM, 1 << 20)
    sub.connect(publisher.endpoint)
    time.sleep(0.2)  # the subscription reaches the publisher (ZMQ's slow joiner)
    return context, publisher, sub


def _per_frame_us(seconds: float, frames: int) -> float:
    return 1e6 * seconds / frames


def _timed(fn: Callable[[], object], repeats: int) -> float:
    """Smallest of `repeats` timings of fn() in CPU seconds of this thread: the host work itself, not
    the time other processes hold the cores (torch runs single-threaded here, in this thread)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.thread_time()
        fn()
        best = min(best, time.thread_time() - start)
    return best


def _decode_all(items: list, limits: FrameLimits) -> list[Request]:
    now = time.monotonic()
    return [r for i, ind in enumerate(items) for r in decode_indication(ind, f"e2node-{i % NODES}", limits, now)]


def _batch_through(requests: list[Request], size: int) -> None:
    async def run() -> None:
        batcher = Batcher(BatchLimits(max_batch=size, max_wait_ms=0.0, queue_limit=len(requests)),
                          Metrics())
        for r in requests:
            batcher.submit(r)
        for _ in range(0, len(requests), size):
            await batcher.next_batch()

    asyncio.run(run())


def _trunk_only(engine: EarlyExitEngine, batch: list[Request], table: TaskTable) -> dict[int, torch.Tensor]:
    """Tokens and blocks as the engine runs them: all rows to the shallowest exit, then only those
    that go deeper. Returns the hidden states of each exit's rows (for timing the heads alone)."""
    with torch.inference_mode():
        rows, h, _ = engine.embed(by_frame_layout(batch)[0])
        exits = np.array([table[r.task].exit for r in rows])
        states, alive = {}, np.arange(len(batch))
        for k, block in enumerate(engine.encoder.blocks[: exits.max()], start=1):
            h = block(h)
            leaving = exits[alive] == k
            if leaving.any():
                states[k] = h.index_select(0, torch.from_numpy(np.nonzero(leaving)[0]))
                keep = torch.from_numpy(np.nonzero(~leaving)[0])
                h, alive = h.index_select(0, keep), alive[~leaving]
    return states


def _heads_only(states: dict[int, torch.Tensor], table: TaskTable) -> None:
    with torch.inference_mode():
        for k, h in states.items():
            for plan in table.values():
                if plan.exit == k:
                    plan.heads[k](h).softmax(-1).max(-1)


def measure(encoder: Encoder, table: TaskTable, shapes: Mapping[str, tuple[int, int]], frames: int,
            batch_sizes: Sequence[int] = BATCH_SIZES, repeats: int = 5) -> dict[str, dict[str, float]]:
    """Host microseconds per frame by stage, per batch size: {str(batch): {stage: us, "total": us}}."""
    limits = FrameLimits(1 << 20, dict(shapes), 1e6, max_clock_skew_s=3600.0)
    items = indications(shapes, frames)
    multi_frame = indications(shapes, frames // MULTI_FRAME, frames=MULTI_FRAME)
    requests = _decode_all(items, limits)
    metrics = Metrics()
    engine = EarlyExitEngine(encoder, metrics)
    free_encoder, free_table = arithmetic_free(encoder, table)
    host_engine = EarlyExitEngine(free_encoder, metrics)
    context, zmq_pub, sub = zmq_loopback(metrics)
    # What publishing costs the serving thread: the publishers' own `publish` (serialise and queue);
    # the Redis writer, never started here, would send the queue on the event loop.
    redis_pub = RedisPublisher("redis://127.0.0.1:1/0", 1000, metrics, queue_limit=1 << 40)
    batch_wire = serialised_once(zmq_pub.publish_groups, redis_pub.publish_groups)
    out: dict[str, dict[str, float]] = {}
    try:
        decode_s = _timed(lambda: _decode_all(items, limits), repeats)
        decode_multi_s = _timed(lambda: _decode_all(multi_frame, limits), repeats)
        for size in batch_sizes:
            batches = [requests[i : i + size] for i in range(0, len(requests), size)]
            released: list = []
            engine_s = _timed(lambda: [engine.run(b, table, released.append) for b in batches], repeats)
            engine_host_s = _timed(lambda: [host_engine.run(b, free_table, lambda _: None) for b in batches], repeats)
            states = [_trunk_only(engine, b, table) for b in batches]
            trunk_s = _timed(lambda: [_trunk_only(engine, b, table) for b in batches], repeats)
            heads_s = _timed(lambda: [_heads_only(s, table) for s in states], repeats)
            groups = released[-(len(released) // repeats) :]  # the last repeat's release groups

            def publish() -> None:
                for group in groups:
                    zmq_pub.publish(group)
                    redis_pub.publish(group)
                    record_decisions(metrics, group)

            def publish_batch() -> None:
                for group in groups:
                    batch_wire(group)
                    record_decisions(metrics, group)

            publish_s = _timed(publish, repeats)
            publish_batch_s = _timed(publish_batch, repeats)
            while sub.poll(0):
                sub.recv_multipart()
            stages = {
                "decode_validate": _per_frame_us(decode_s, frames),
                f"decode_validate_{MULTI_FRAME}_per_indication": _per_frame_us(decode_multi_s, len(multi_frame) * MULTI_FRAME),
                "batching": _per_frame_us(_timed(lambda: _batch_through(requests, size), repeats), frames),
                "trunk_launch": _per_frame_us(trunk_s, frames),
                "heads": _per_frame_us(heads_s, frames),
                "decision_building": max(0.0, _per_frame_us(engine_s - trunk_s - heads_s, frames)),
                "publish": _per_frame_us(publish_s, frames),
                "publish_batch": _per_frame_us(publish_batch_s, frames),
            }
            stages["engine_host"] = _per_frame_us(engine_host_s, frames)
            stages["total_after_decode"] = sum(stages[k] for k in STAGES if k != "decode_validate")
            stages["total"] = stages["total_after_decode"] + stages["decode_validate"]
            stages["host_overhead"] = sum(stages[k] for k in HOST_OVERHEAD)
            stages["host_overhead_batch"] = sum(stages[k] for k in HOST_OVERHEAD_BATCH)
            out[str(size)] = stages
    finally:
        sub.close()
        zmq_pub.close()
        asyncio.run(redis_pub.aclose())
        context.term()
    return out


def format_host_table(result: Mapping[str, Mapping[str, float]]) -> str:
    cols = [*STAGES, "total_after_decode", "total"]
    lines = ["host CPU microseconds per frame by stage (trivial trunk: width 4, identity blocks)",
             f"{'batch':>6}" + "".join(f"{c[:14]:>15}" for c in cols)]
    for size, stages in result.items():
        lines.append(f"{size:>6}" + "".join(f"{stages[c]:>15.2f}" for c in cols))
    overhead = (*HOST_OVERHEAD, "host_overhead", "publish_batch", "host_overhead_batch")
    lines += ["", "host overhead per frame: " + " + ".join(HOST_OVERHEAD) + " (no token, block or head arithmetic, "
              "no decode); with publish.wire: batch, publish_batch in place of publish; "
              f"decode per frame with {MULTI_FRAME} frames per Indication beside it",
              f"{'batch':>6}" + "".join(f"{c[:14]:>15}" for c in (*overhead, f"decode_{MULTI_FRAME}/ind"))]
    for size, stages in result.items():
        lines.append(f"{size:>6}" + "".join(f"{stages[c]:>15.2f}" for c in overhead)
                     + f"{stages[f'decode_validate_{MULTI_FRAME}_per_indication']:>15.2f}")
    return "\n".join(lines)
