"""The xApp process, wiring only: the descriptor's E2 subscribers feed the batcher, the serving
loop (xapp.engine.serving) takes batches to the engine, and released decisions fan out to the
publishers (ZMQ, Redis, E2 Control) and the decision metrics; plus the ops endpoints and descriptor
hot reload, which swaps the immutable task table between batches."""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import time
from dataclasses import dataclass

import torch

from xapp.config import Descriptor, DescriptorWatcher, Shard, select_nodes
from xapp.e2.client import E2Subscriber, Subscribers
from xapp.e2.types import AppIdentity, Backoff
from xapp.engine.batcher import Batcher
from xapp.engine.build import (DeviceError, batch_limits, build_table, engine_threads, frame_limits, resolve_device,
                               side_thread)
from xapp.engine.choose import Choice, resolve
from xapp.engine.precision import PrecisionError
from xapp.engine.runner import EarlyExitEngine, PlanError, TaskTable
from xapp.engine.serving import ServingLoop
from xapp.model import WeightsFileError, load_encoder
from xapp.model.side import compile_kernels
from xapp.ops.decision_metrics import record_decisions
from xapp.ops.http import HttpLimits, OpsServer, Readiness
from xapp.ops.metrics import Metrics
from xapp.publish.control import CONTROL_KINDS, ControlLoop, ControlRule
from xapp.publish.fanout import Fanout, serialised_once
from xapp.publish.redis_pub import RedisPublisher
from xapp.publish.zmq_pub import PublishError, ZmqPublisher
from xapp.vocab import NodeEndpoint

log = logging.getLogger(__name__)


def warn_plaintext(descriptor: Descriptor) -> None:
    """Plaintext links are the demo's default; say so where an operator looks."""
    publish = descriptor.publish
    links = {
        "e2 gRPC (no e2.tls)": descriptor.e2.tls is None,
        "redis (not rediss://)": not publish.redis_url.startswith("rediss://"),
        "zmq (no publish.zmq.curve)": publish.zmq_curve is None
                                      and not publish.zmq_endpoint.startswith(("ipc://", "inproc://")),
    }
    for link, plain in links.items():
        if plain:
            log.warning("insecure link: %s is plaintext; use it for the demo only", link, extra={"link": link})


class AppError(Exception):
    """The xApp cannot start as configured (bad device, unreadable encoder, unusable head...)."""


def controls(descriptor: Descriptor) -> dict[str, ControlRule]:
    """Task -> the E2 Control kinds the descriptor enables for it, and the confidence they need."""
    return {name: ControlRule(tuple(kind for kind in CONTROL_KINDS if getattr(spec.control, kind)),
                              spec.control.min_confidence)
            for name, spec in descriptor.enabled_tasks.items()}


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
        self.engine_choice: Choice | None = None  # the trunk's runtime and precision, once started
        self.table: TaskTable = {}
        self.subscribers = Subscribers()
        self.zmq: ZmqPublisher | None = None
        self.redis: RedisPublisher | None = None
        self.ops: OpsServer | None = None
        self.batcher = Batcher(batch_limits(descriptor), metrics)
        self.control = ControlLoop(self.subscribers.control, metrics)
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
        descriptor = self.descriptor
        ops, publish = descriptor.ops, descriptor.publish
        torch.set_num_threads(engine_threads(self.overrides.threads))
        try:
            device = resolve_device(descriptor.encoder.device)
            limits = HttpLimits(ops.max_connections, ops.request_timeout_s)
            server = OpsServer(self.metrics, self.readiness, self.overrides.ops_host or ops.bind, ops.http_port, limits)
            await server.start()  # alive (not ready) while the model loads
            self.ops = server
            encoder = await asyncio.to_thread(load_encoder, descriptor.encoder.checkpoint, str(device))
            self.table = await asyncio.to_thread(build_table, descriptor, encoder)
            if device.type == "cpu":
                await asyncio.to_thread(compile_kernels)  # no batch waits for the side features' compile
            self.zmq = ZmqPublisher(publish.zmq_endpoint, self.metrics, curve=publish.zmq_curve)
            self.engine_choice = choice = await asyncio.to_thread(resolve, descriptor, encoder, self.table)
            self.engine = EarlyExitEngine(encoder, self.metrics, choice.setting.precision, side_thread(device),
                                          choice.setting.runtime)
            self.metrics.engine_setting(choice.setting.runtime, choice.setting.precision, choice.how)
            log.info("trunk served on %s", choice.setting, extra={
                "runtime": choice.setting.runtime, "precision": choice.setting.precision, "how": choice.how})
        except OSError as exc:
            raise AppError(f"ops http port {ops.http_port}: {exc}") from exc
        except (DeviceError, PlanError, WeightsFileError, PublishError, PrecisionError) as exc:
            raise AppError(str(exc)) from exc
        self.metrics.serving(self._exits(), descriptor.batching.deadline_ms, [n.id for n in self._served_nodes(descriptor)])
        # Everything loaded so far lives as long as the process: keep it out of the collector's full
        # passes, which otherwise walk torch's and gRPC's object graphs (tens of ms) while serving.
        gc.freeze()
        self.control.configure(controls(descriptor))
        self.redis = RedisPublisher(
            publish.redis_url, publish.stream_maxlen, self.metrics, publish.redis_password,
            queue_limit=publish.redis_buffer, tls=publish.redis_tls,
        )
        warn_plaintext(descriptor)
        publishers = ((self.zmq.publish, self.redis.publish) if publish.wire == "decision"
                      else (serialised_once(self.zmq.publish_groups, self.redis.publish_groups),))
        deliver = Fanout(*publishers, self.control.observe, functools.partial(record_decisions, self.metrics))
        self._spawn("redis", self.redis.run())
        self._spawn("serve", ServingLoop(self.batcher, self.engine, lambda: self.table, deliver, self.metrics).run())
        for node in self._served_nodes(descriptor):
            self._subscribe(node.id, node.address)
        if descriptor.path is not None:
            interval = self.overrides.watch_interval_s
            watcher = DescriptorWatcher(descriptor.path, self.apply, self.metrics, interval, current=descriptor)
            self._spawn("watcher", watcher.run())
        log.info(
            "xapp started",
            extra={"tasks": self._exits(), "nodes": sorted(self.subscribers),
                   "device": str(device), "threads": torch.get_num_threads()},
        )

    async def _shutdown(self) -> None:
        self.control.configure({})  # the last batches drain after the subscriptions are gone
        await asyncio.gather(*(self._detach(node_id) for node_id in list(self.subscribers)))
        self.batcher.close()
        if "serve" in self._tasks:
            await asyncio.gather(self._tasks.pop("serve"), return_exceptions=True)
        if self.engine is not None:
            self.engine.close()
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

    def _exits(self) -> dict[str, int]:
        return {task: plan.exit for task, plan in self.table.items()}

    # -- E2 ----------------------------------------------------------------------------------

    def _served_nodes(self, descriptor: Descriptor) -> tuple[NodeEndpoint, ...]:
        """The descriptor's E2 nodes that this replica's shard serves."""
        return select_nodes(descriptor.e2.nodes, self.overrides.shard.index, self.overrides.shard.count)

    def _subscribe(self, node_id: str, address: str) -> None:
        descriptor = self.descriptor
        reconnect = descriptor.e2.reconnect
        service_model = descriptor.e2.service_model
        sub = E2Subscriber(
            NodeEndpoint(node_id, address),
            AppIdentity(descriptor.xapp.app_id, descriptor.xapp.instance_id, service_model.name, service_model.version),
            self.batcher.submit,
            self.metrics,
            frame_limits(descriptor),
            Backoff(reconnect.initial_backoff_ms, reconnect.max_backoff_ms, reconnect.jitter),
            tls=descriptor.e2.tls,
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
        if self.engine_choice is not None and self.engine_choice.how in ("measured", "cached") and (
                self._exits() != {t: p.exit for t, p in table.items()} or old.batching.max_batch != new.batching.max_batch):
            log.info("trunk stays on %s, chosen for the plan it started with; a restart measures the new plan",
                     self.engine_choice.setting, extra={"runtime": self.engine_choice.setting.runtime,
                                                        "precision": self.engine_choice.setting.precision})
        self.descriptor = new
        self.table = table
        self.batcher.reconfigure(batch_limits(new))
        self.control.configure(controls(new))
        limits = frame_limits(new)
        for sub in self.subscribers.values():
            sub.limits = limits
        wanted = {n.id: n.address for n in self._served_nodes(new)}
        self.metrics.serving(self._exits(), new.batching.deadline_ms, wanted)
        for node_id, sub in list(self.subscribers.items()):
            if wanted.get(node_id) != sub.node.address:
                self._detach(node_id)
        for node_id, address in wanted.items():
            if node_id not in self.subscribers or self.subscribers[node_id].node.address != address:
                self._subscribe(node_id, address)
        log.info("descriptor applied", extra={"tasks": self._exits()})

