"""The xApp process: descriptor -> encoder and heads -> E2 subscribers -> batcher -> engine ->
publishers (ZMQ, Redis, E2 Control), with ops endpoints and descriptor hot reload.

Threads: everything runs on one asyncio loop except model compute, which runs in a single
dedicated worker thread (torch uses its own intra-op pool inside it). The engine hands each group
of released decisions back to the loop with call_soon_threadsafe, so publishing never waits for
the rest of the batch and never blocks compute.

Hot reload swaps an immutable task table between batches: a batch started under the old table
finishes under it, the next one uses the new one; queued frames are kept.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from xapp.config import Descriptor, DescriptorWatcher, Shard, TaskSpec, select_nodes
from xapp.e2.client import E2Subscriber
from xapp.e2.gen import e2sm_iq_pb2 as iq_pb2
from xapp.e2.types import AppIdentity, Backoff, FrameLimits
from xapp.engine.batcher import Batcher, BatcherClosed, BatchLimits
from xapp.engine.precision import PrecisionError
from xapp.engine.runner import EarlyExitEngine, PlanError, TaskPlan, TaskTable, load_plan
from xapp.model import Encoder, WeightsFileError, load_encoder
from xapp.model.policies import Policy
from xapp.ops.decision_metrics import record_decisions
from xapp.ops.http import HttpLimits, OpsServer, Readiness
from xapp.ops.metrics import Metrics
from xapp.publish.control import ControlLoop
from xapp.publish.redis_pub import RedisPublisher
from xapp.publish.zmq_pub import PublishError, ZmqPublisher
from xapp.vocab import DecisionBatch, NodeEndpoint, Request

log = logging.getLogger(__name__)



def engine_threads(requested: int | None = None) -> int:
    """Torch threads for the engine: as requested, else all cores but one, which the event loop
    (gRPC streams, validation, publishing) needs; on 2 cores this halves the online p99 at half load
    (`xapp bench --threads 2` vs `--threads 1`)."""
    return requested or max(1, (os.cpu_count() or 1) - 1)

def warn_plaintext(descriptor: Descriptor) -> None:
    """Plaintext links are the demo's default; say so where an operator looks."""
    p = descriptor.publish
    links = {
        "e2 gRPC (no e2.tls)": descriptor.e2.tls is None,
        "redis (not rediss://)": not p.redis_url.startswith("rediss://"),
        "zmq (no publish.zmq.curve)": p.zmq_curve is None and not p.zmq_endpoint.startswith(("ipc://", "inproc://")),
    }
    for link, plain in links.items():
        if plain:
            log.warning("insecure link: %s is plaintext; use it for the demo only", link, extra={"link": link})


class AppError(Exception):
    """The xApp cannot start as configured (bad device, unreadable encoder, unusable head...)."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise AppError(f"encoder.device is {name} but CUDA is not available")
    return torch.device(name)


def frame_shapes(tasks: Mapping[str, TaskSpec]) -> dict[str, tuple[int, int]]:
    from xapp.data import TASKS

    return {name: tuple(TASKS[name].frame_shape) for name in tasks}


def build_table(descriptor: Descriptor, encoder: Encoder) -> dict[str, TaskPlan]:
    """Load every enabled task's heads; raises PlanError naming the task and file."""
    from xapp.data import TASKS

    table = {}
    for name, spec in descriptor.enabled_tasks.items():
        p = spec.policy
        heads = [(e.exit, e.head, e.sha256) for e in p.exits] if p.kind != "fixed" else []
        heads.append((spec.exit, spec.head, spec.sha256))
        policy = Policy(p.kind, p.threshold or 0.0, p.patience or 2)
        table[name] = load_plan(name, heads, policy, encoder, TASKS[name].classes)
    return table


def batch_limits(descriptor: Descriptor) -> BatchLimits:
    b = descriptor.batching
    return BatchLimits(b.max_batch, b.max_wait_ms, b.queue_limit)


def controls(descriptor: Descriptor) -> dict[str, list[str]]:
    out = {}
    for name, spec in descriptor.enabled_tasks.items():
        out[name] = [k for k in ("beam_switch", "interference_mitigation") if getattr(spec.control, k)]
    return out


@dataclass(frozen=True)
class Overrides:
    """Process settings that are not part of the descriptor (CLI / environment)."""

    shard: Shard = Shard(0, 1)
    threads: int | None = None  # torch intra-op threads for the engine; None = all cores
    ops_host: str | None = None  # None: the descriptor's ops.bind
    watch_interval_s: float = 0.5


class XApp:
    def __init__(self, descriptor: Descriptor, metrics: Metrics, overrides: Overrides = Overrides()) -> None:
        self.descriptor = descriptor
        self.metrics = metrics
        self.overrides = overrides
        self.engine: EarlyExitEngine | None = None
        self.table: TaskTable = {}
        self.subscribers: dict[str, E2Subscriber] = {}
        self.zmq: ZmqPublisher | None = None
        self.redis: RedisPublisher | None = None
        self.ops: OpsServer | None = None
        self.batcher = Batcher(batch_limits(descriptor), metrics)
        self.control = ControlLoop(self._send_control)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")
        self._tasks: dict[str, asyncio.Task] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set, then shut down cleanly (in-flight batches finish)."""
        try:
            await self._start()
            await stop.wait()
        finally:
            await self._shutdown()

    def ready(self) -> bool:
        return self.readiness().ready

    def readiness(self) -> Readiness:
        """Ready: model loaded, a subscription up, and no node of this shard without a live
        subscription for longer than e2.max_down_s (named in the detail)."""
        now = time.monotonic()
        limit = self.descriptor.e2.max_down_s
        down = {node_id: sub.down_for(now) for node_id, sub in self.subscribers.items()}
        stale = sorted(node_id for node_id, seconds in down.items() if seconds > limit)
        reasons = []
        if self.engine is None:
            reasons.append("model not loaded yet")
        if not any(sub.up for sub in self.subscribers.values()):
            reasons.append("no E2 subscription is up")
        if stale:
            reasons.append(f"no live subscription for more than {limit:g} s: {', '.join(stale)}")
        nodes = {node_id: {"up": seconds == 0.0, "down_s": round(seconds, 3)} for node_id, seconds in down.items()}
        return Readiness(not reasons, {"reasons": reasons, "nodes_down": stale, "nodes": nodes})

    async def _start(self) -> None:
        d = self.descriptor
        torch.set_num_threads(engine_threads(self.overrides.threads))
        device = resolve_device(d.encoder.device)
        try:
            limits = HttpLimits(d.ops.max_connections, d.ops.request_timeout_s)
            ops = OpsServer(self.metrics, self.readiness, self.overrides.ops_host or d.ops.bind, d.ops.http_port, limits)
            await ops.start()  # alive (not ready) while the model loads
            self.ops = ops
            encoder = await asyncio.to_thread(load_encoder, d.encoder.checkpoint, str(device))
            self.table = await asyncio.to_thread(build_table, d, encoder)
            self.zmq = ZmqPublisher(d.publish.zmq_endpoint, self.metrics, curve=d.publish.zmq_curve)
            self.engine = EarlyExitEngine(encoder, self.metrics, d.encoder.precision)
        except OSError as exc:
            raise AppError(f"ops http port {d.ops.http_port}: {exc}") from exc
        except (PlanError, WeightsFileError, PublishError, PrecisionError) as exc:
            raise AppError(str(exc)) from exc
        self.metrics.serving({t: p.exit for t, p in self.table.items()}, d.batching.deadline_ms,
                             [n.id for n in select_nodes(d.e2.nodes, self.overrides.shard.index, self.overrides.shard.count)])
        # Everything loaded so far lives as long as the process: keep it out of the collector's full
        # passes, which otherwise walk torch's and gRPC's object graphs (tens of ms) while serving.
        gc.freeze()
        self.control.configure(controls(d))
        self.redis = RedisPublisher(
            d.publish.redis_url, d.publish.stream_maxlen, self.metrics, d.publish.redis_password,
            queue_limit=d.publish.redis_buffer, tls=d.publish.redis_tls,
        )
        warn_plaintext(d)
        self._spawn("redis", self.redis.run())
        self._spawn("serve", self._serve())
        for node in select_nodes(d.e2.nodes, self.overrides.shard.index, self.overrides.shard.count):
            self._subscribe(node.id, node.address)
        if d.path is not None:
            watcher = DescriptorWatcher(d.path, self.apply, self.metrics, self.overrides.watch_interval_s, current=d)
            self._spawn("watcher", watcher.run())
        log.info(
            "xapp started",
            extra={"tasks": {t: p.exit for t, p in self.table.items()}, "nodes": sorted(self.subscribers),
                   "device": str(device), "threads": torch.get_num_threads()},
        )

    async def _shutdown(self) -> None:
        self.control.configure({})  # the last batches drain after the subscriptions are gone
        await asyncio.gather(*(self._detach(node_id) for node_id in list(self.subscribers)))
        self.batcher.close()
        if "serve" in self._tasks:
            await asyncio.gather(self._tasks.pop("serve"), return_exceptions=True)
        if self.redis is not None:
            await self.redis.flush(2.0)
        await self.control.aclose()
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()
        if self.redis is not None:
            await self.redis.aclose()
        if self.zmq is not None:
            self.zmq.close()
        if self.ops is not None:
            await self.ops.aclose()
        self._executor.shutdown(wait=True)
        log.info("xapp stopped")

    def _spawn(self, name: str, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        task.add_done_callback(self._task_done)
        self._tasks[name] = task

    def crashed_tasks(self) -> list[str]:
        """Names of this xApp's tasks that ended with an exception (none while supervision works)."""
        return [name for name, t in self._tasks.items() if t.done() and not t.cancelled() and t.exception() is not None]

    def _task_done(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("xapp task %s died", task.get_name(), exc_info=task.exception())

    # -- E2 ----------------------------------------------------------------------------------

    def _limits(self) -> FrameLimits:
        d = self.descriptor
        checks = d.e2.frame_checks
        return FrameLimits(d.e2.max_frame_bytes, frame_shapes(d.enabled_tasks), d.batching.deadline_ms,
                           max_clock_skew_s=checks.max_clock_skew_s, replay_window=checks.replay_window)

    def _subscribe(self, node_id: str, address: str) -> None:
        d = self.descriptor
        r = d.e2.reconnect
        sub = E2Subscriber(
            NodeEndpoint(node_id, address),
            AppIdentity(d.xapp.app_id, d.xapp.instance_id, d.e2.service_model.name, d.e2.service_model.version),
            self.batcher.submit,
            self.metrics,
            self._limits(),
            Backoff(r.initial_backoff_ms, r.max_backoff_ms, r.jitter),
            tls=d.e2.tls,
        )
        self.subscribers[node_id] = sub
        self._spawn(f"e2:{node_id}", sub.run())

    def _detach(self, node_id: str) -> asyncio.Task:
        """Forget a node's subscriber now; the returned task stops it."""
        sub = self.subscribers.pop(node_id)
        running = self._tasks.pop(f"e2:{node_id}")

        async def stop() -> None:
            await sub.stop()
            try:
                await asyncio.wait_for(running, 2.0)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                pass

        return asyncio.get_running_loop().create_task(stop())

    async def _send_control(self, node_id: str, message: iq_pb2.ControlMessage, cell_id: str, task: str):
        sub = self.subscribers.get(node_id)
        if sub is None:
            raise AppError(f"no subscription to node {node_id} to send a control through")
        return await sub.control(message, cell_id=cell_id, task=task)

    # -- serving -----------------------------------------------------------------------------

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()

        def release(decisions: DecisionBatch) -> None:
            loop.call_soon_threadsafe(self._deliver, decisions)

        while True:
            try:
                batch: list[Request] = await self.batcher.next_batch()
            except BatcherClosed:
                return
            started = time.monotonic()
            for r in batch:
                self.metrics.stage_latency.labels("queue").observe(started - r.t_arrival)
            table = self.table  # one snapshot per batch: a reload never lands mid-batch
            try:
                report = await loop.run_in_executor(self._executor, self.engine.run, batch, table, release)
                self.batcher.observe_service_time(report.seconds)
            except Exception:
                log.exception("engine failed on a batch of %d frames", len(batch))
                for r in batch:
                    self.metrics.frames_shed.labels(r.task, "engine_error").inc()

    def _deliver(self, decisions: DecisionBatch) -> None:
        self.zmq.publish(decisions)
        self.redis.publish(decisions)
        self.control.observe(decisions)
        record_decisions(self.metrics, decisions)

    # -- hot reload --------------------------------------------------------------------------

    def apply(self, new: Descriptor) -> None:
        """Apply an edited, already validated descriptor; raise to refuse it (the old one stays).

        Live: tasks (enable, exit, head, policy, thresholds, controls), batching, E2 node list,
        frame size limit. Encoder, publishing endpoints and ops port need a restart and are logged."""
        old = self.descriptor
        table = build_table(new, self.engine.encoder)  # PlanError refuses the whole edit
        for part in ("encoder", "publish", "ops", "xapp"):
            if getattr(old, part) != getattr(new, part):
                log.warning("descriptor %s changed; it takes effect on restart", part, extra={"part": part})
        self.descriptor = new
        self.table = table
        self.batcher.reconfigure(batch_limits(new))
        self.control.configure(controls(new))
        limits = self._limits()
        for sub in self.subscribers.values():
            sub.limits = limits
        wanted = {n.id: n.address for n in select_nodes(new.e2.nodes, self.overrides.shard.index, self.overrides.shard.count)}
        self.metrics.serving({t: p.exit for t, p in table.items()}, new.batching.deadline_ms, wanted)
        for node_id, sub in list(self.subscribers.items()):
            if wanted.get(node_id) != sub.node.address:
                self._detach(node_id)
        for node_id, address in wanted.items():
            if node_id not in self.subscribers or self.subscribers[node_id].node.address != address:
                self._subscribe(node_id, address)
        log.info("descriptor applied", extra={"tasks": {t: p.exit for t, p in table.items()}})

