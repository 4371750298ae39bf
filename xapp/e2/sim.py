"""Simulated E2 nodes: real gRPC servers speaking the E2 subscription and control API with the
E2SM-IQ service model.

Each node streams frames from the task generators (a pre-generated pool per task, cycled, so that
streaming costs only serialisation) at a set rate, round-robin over the subscribed tasks, with a
node-wide sequence number and wall-clock timestamps. It applies Control requests (a beam switch
changes its serving beam) and records them. For tests it injects faults on command: abort or end the
active streams, stop and restart on the same port, and malformed frames interleaved with good ones.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import AsyncIterator, Mapping, Sequence

import grpc
import numpy as np

from xapp.e2 import e2sm_iq, messages
from xapp.e2.e2sm_iq import E2smDecodeError, ServiceModelMismatch
from xapp.e2.faults import MALFORMED, malformed_indication
from xapp.e2.frames import IQ_DTYPE, encode_indication
from xapp.e2.gen import e2sm_iq_pb2 as iq_pb2
from xapp.e2.gen import e2t_pb2, e2t_pb2_grpc
from xapp.e2.tls import ServerTls, TlsConfigError, server_credentials
from xapp.vocab import NodeEndpoint

log = logging.getLogger(__name__)

NUM_BEAMS = 16
MAX_SLEEP = 0.05  # streams notice drop/end requests and rate changes within this many seconds
MAX_LAG = 1.0  # a stream further behind its schedule than this re-anchors instead of bursting

class SimError(Exception):
    pass


@dataclass(frozen=True)
class FramePool:
    """Pre-generated frames of one task, payloads already serialised (with ground-truth labels)."""

    task: str
    frames: np.ndarray  # complex64 [N, A, S]
    labels: tuple[str, ...]
    payloads: tuple[bytes, ...]
    snr_db: tuple[float, ...] = ()

    @classmethod
    def generate(cls, task: str, n: int, seed: int, snr_db: tuple[float, float] | None = None,
                 samples: int | None = None) -> FramePool:
        """`n` frames of `task` from xapp.data, of its own length unless `samples` is given."""
        from xapp.data import generate

        options = {} if snr_db is None else {"snr_db": snr_db}
        if samples is not None:
            options["samples"] = samples
        data = generate(task, n, seed, **options)
        return cls.from_arrays(task, data.x, tuple(data.classes[int(y)] for y in data.y), data.snr_db)

    @classmethod
    def from_arrays(cls, task: str, x: np.ndarray, labels: Sequence[str], snr_db: Sequence[float]) -> FramePool:
        """A pool from given frames (complex [N, A, S]), e.g. a recording loaded with xapp.data.io."""
        frames = np.ascontiguousarray(x, dtype=np.complex64)
        if frames.ndim != 3 or len(frames) == 0 or len(frames) != len(labels) or len(frames) != len(snr_db):
            raise SimError(f"{task}: need frames [N, A, S] with N labels and N SNRs, got {x.shape}")
        payloads = tuple(
            e2sm_iq.indication_message(frame.astype(IQ_DTYPE).tobytes(), label, float(snr))
            for frame, label, snr in zip(frames, labels, snr_db)
        )
        return cls(task, frames, tuple(labels), payloads, tuple(float(v) for v in snr_db))

    @property
    def shape(self) -> tuple[int, int]:
        return self.frames.shape[1], self.frames.shape[2]

    def payload(self, start: int, count: int) -> bytes:
        """Indication.payload of `count` frames from `start` on (cycling): the single-frame form for one."""
        if count == 1:
            return self.payloads[start % len(self.payloads)]
        index = np.arange(start, start + count) % len(self.frames)
        return e2sm_iq.frames_message(self.frames[index].astype(IQ_DTYPE).tobytes(), [self.labels[i] for i in index],
                                      [self.snr_db[i] for i in index] if self.snr_db else ())


def build_pools(
    tasks: Sequence[str], n: int, seed: int, snr_db: tuple[float, float] | None = None,
    samples: Mapping[str, int] | None = None,
) -> dict[str, FramePool]:
    """Frames of each task, `samples[task]` long where given (captures for a task read in windows)."""
    samples = samples or {}
    return {task: FramePool.generate(task, n, seed + 7919 * i, snr_db, samples.get(task)) for i, task in enumerate(tasks)}


@dataclass(frozen=True)
class ControlRecord:
    t_ns: int
    cell_id: str
    task: str
    message: iq_pb2.ControlMessage
    outcome: iq_pb2.ControlOutcome


class _Stream:
    """One active Subscribe call as the node sees it."""

    def __init__(self, transaction_id: str, period: float | None) -> None:
        self.transaction_id = transaction_id
        self.period = period  # from the subscription's event trigger; None follows the node's rate
        self.end: str | None = None  # "end" (clean end of stream) or "abort" (UNAVAILABLE)


class SimulatedNode:
    """One E2 node. `rate_hz` is Indications per second per subscription (all tasks together) and
    `frames_per_indication` the frames of one task each carries (1: the single-frame form); both may
    be changed while streaming."""

    def __init__(
        self,
        node_id: str,
        pools: Mapping[str, FramePool],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        rate_hz: float = 100.0,
        cell_id: str | None = None,
        offset: int = 0,
        sample_rate_hz: float = 1e6,
        center_frequency_hz: float = 3.5e9,
        tls: ServerTls | None = None,
        frames_per_indication: int = 1,
    ) -> None:
        if not pools:
            raise SimError(f"{node_id}: no tasks to serve")
        if frames_per_indication < 1:
            raise SimError(f"{node_id}: frames_per_indication must be >= 1, got {frames_per_indication}")
        self.node_id = node_id
        self.cell_id = cell_id or f"{node_id}-cell0"
        self.pools = dict(pools)
        self.host = host
        self.port = port
        self.rate_hz = rate_hz
        self.frames_per_indication = frames_per_indication
        self.sample_rate_hz = sample_rate_hz
        self.center_frequency_hz = center_frequency_hz
        self.tls = tls  # None: plaintext
        self.serving_beam = 0
        self.mitigations: dict[str, str] = {}  # interference kind -> MitigationAction name
        self.controls: list[ControlRecord] = []
        self.frames_sent = 0
        self.malformed_sent: list[tuple[int, str]] = []  # (seq, kind)
        self.lag_resets = 0
        self.unsubscribe_delay_s = 0.0  # a slow node: ends the stream at once, answers Unsubscribe this much later
        self._seq = itertools.count(1)
        self._cursor = itertools.count(offset)
        self._faults: deque[str] = deque()
        self._streams: set[_Stream] = set()
        self._server: grpc.aio.Server | None = None

    @property
    def endpoint(self) -> NodeEndpoint:
        return NodeEndpoint(self.node_id, f"{self.host}:{self.port}")

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def active_streams(self) -> int:
        return len(self._streams)

    async def start(self) -> None:
        if self._server is not None:
            return
        # so_reuseport off: a port already in use is an error, not a silently shared listener.
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        e2t_pb2_grpc.add_SubscriptionServiceServicer_to_server(_SubscriptionServicer(self), server)
        e2t_pb2_grpc.add_ControlServiceServicer_to_server(_ControlServicer(self), server)
        address = f"{self.host}:{self.port}"
        try:
            if self.tls is None:
                port = server.add_insecure_port(address)
            else:
                port = server.add_secure_port(address, server_credentials(self.tls))
        except TlsConfigError as exc:
            raise SimError(f"{self.node_id}: {exc}") from None
        except RuntimeError as exc:
            raise SimError(f"{self.node_id}: cannot listen on {address}: {exc}") from None
        if port == 0:
            raise SimError(f"{self.node_id}: cannot listen on {address}")
        self.port = port
        await server.start()
        self._server = server
        log.info("e2 node %s listening on %s:%d", self.node_id, self.host, port)

    async def stop(self) -> None:
        """Stop serving at once; active streams fail on the client with UNAVAILABLE or CANCELLED."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace=None)
            self._streams.clear()

    async def restart(self, downtime: float = 0.0) -> None:
        """Stop, stay down for `downtime` seconds, and serve again on the same port."""
        await self.stop()
        await asyncio.sleep(downtime)
        await self.start()

    def drop_streams(self, mode: str = "abort") -> int:
        """Make every active stream fail ("abort": status UNAVAILABLE) or finish ("end": status OK).
        Returns how many streams were told."""
        if mode not in ("abort", "end"):
            raise SimError(f"drop mode must be 'abort' or 'end', got {mode!r}")
        for stream in self._streams:
            stream.end = mode
        return len(self._streams)

    def inject(self, kinds: Sequence[str]) -> None:
        """Queue malformed frames; each goes out on an active stream just before its next good frame."""
        unknown = [k for k in kinds if k not in MALFORMED]
        if unknown:
            raise SimError(f"unknown malformed frame kind(s) {unknown}; choose from {', '.join(MALFORMED)}")
        self._faults.extend(kinds)

    async def _subscribe(
        self, request: e2t_pb2.SubscribeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[e2t_pb2.SubscribeResponse]:
        await self._check_headers(request.headers, context)
        try:
            period_ms, tasks = self._admit(request.subscription)
        except (E2smDecodeError, SimError) as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{self.node_id}: {exc}")
        stream = _Stream(request.transaction_id, period_ms / 1000.0 if period_ms else None)
        self._streams.add(stream)
        try:
            channel = f"{self.node_id}/{request.transaction_id}/{id(stream):x}"
            yield messages.ack(channel)
            loop = asyncio.get_running_loop()
            next_t = loop.time()
            while stream.end is None:
                period = stream.period or (1.0 / self.rate_hz if self.rate_hz > 0 else None)
                now = loop.time()
                if period is None:  # rate 0: paused
                    next_t = now
                    await asyncio.sleep(MAX_SLEEP)
                    continue
                if now - next_t > MAX_LAG:
                    self.lag_resets += 1
                    next_t = now
                while next_t <= now and stream.end is None:
                    k = next(self._cursor)
                    task = tasks[k % len(tasks)]
                    if self._faults:
                        yield self._malformed(self._faults.popleft(), task)
                    yield self._frame(task, k // len(tasks), period)
                    next_t += period
                await asyncio.sleep(min(MAX_SLEEP, max(0.0, next_t - loop.time())))
            if stream.end == "abort":
                await context.abort(grpc.StatusCode.UNAVAILABLE, f"{self.node_id}: stream dropped (fault injection)")
        finally:
            self._streams.discard(stream)

    def _admit(self, spec: e2t_pb2.SubscriptionSpec) -> tuple[int, tuple[str, ...]]:
        """The reporting period and the tasks to stream for a SubscriptionSpec: the served tasks its
        REPORT actions name (no actions: all of them). An action whose frame shape differs from the
        node's frames is refused, as is a subscription that leaves nothing to stream."""
        period_ms = e2sm_iq.decode(iq_pb2.EventTriggerDefinition, spec.event_trigger.payload).reporting_period_ms
        wanted = []
        for action in spec.actions:
            if action.type != e2t_pb2.ACTION_TYPE_REPORT:
                raise SimError(f"action {action.id}: only REPORT actions are supported")
            definition = e2sm_iq.decode(iq_pb2.ActionDefinition, action.payload)
            pool = self.pools.get(definition.task)
            shape = (definition.antennas, definition.samples)
            if pool is not None and shape != (0, 0) and shape != pool.shape:
                raise SimError(f"action {action.id} asks for {definition.task} frames of {shape[0]}x{shape[1]}; "
                               f"this node's are {pool.shape[0]}x{pool.shape[1]}")
            wanted.append(definition.task)
        tasks = tuple(t for t in self.pools if not wanted or t in wanted)
        if not tasks:
            raise SimError(f"serves none of {wanted}; it serves {list(self.pools)}")
        return period_ms, tasks

    def _unsubscribe(self, request: e2t_pb2.UnsubscribeRequest) -> int:
        ended = [s for s in self._streams if s.transaction_id == request.transaction_id]
        for stream in ended:
            stream.end = "end"
        return len(ended)

    def _header(self, task: str, shape: tuple[int, int], frames: int = 1, interval_ns: int = 0) -> iq_pb2.IndicationHeader:
        """The header of the next Indication; it takes `frames` sequence numbers, and its frames were
        captured `interval_ns` apart, the last one now."""
        seq = next(self._seq)
        if frames > 1:
            self._seq = itertools.count(seq + frames)
        return iq_pb2.IndicationHeader(
            node_id=self.node_id,
            cell_id=self.cell_id,
            sequence_number=seq,
            timestamp_ns=time.time_ns() - (frames - 1) * interval_ns,
            sample_rate_hz=self.sample_rate_hz,
            center_frequency_hz=self.center_frequency_hz,
            antennas=shape[0],
            samples=shape[1],
            task=task,
            frames=frames if frames > 1 else 0,
            frame_interval_ns=interval_ns,
        )

    def _frame(self, task: str, index: int, period: float) -> e2t_pb2.SubscribeResponse:
        """Indication number `index` of `task`: one frame, or frames_per_indication spread over `period` s."""
        pool = self.pools[task]
        count = self.frames_per_indication
        self.frames_sent += count
        interval_ns = int(period * 1e9 / count) if count > 1 else 0
        return encode_indication(self._header(task, pool.shape, count, interval_ns), pool.payload(index * count, count))

    def _malformed(self, kind: str, task: str) -> e2t_pb2.SubscribeResponse:
        pool = self.pools[task]
        header = self._header(task, pool.shape)
        self.malformed_sent.append((header.sequence_number, kind))
        return malformed_indication(kind, header, pool.frames[0])

    def _control(self, header: iq_pb2.ControlHeader, message: iq_pb2.ControlMessage) -> iq_pb2.ControlOutcome:
        kind = message.WhichOneof("kind")
        if header.cell_id and header.cell_id != self.cell_id:
            return iq_pb2.ControlOutcome(success=False, detail=f"unknown cell {header.cell_id!r}")
        if kind == "beam_switch":
            beam = message.beam_switch.beam_index
            if beam >= NUM_BEAMS:
                return iq_pb2.ControlOutcome(success=False, detail=f"beam {beam} outside 0..{NUM_BEAMS - 1}")
            previous, self.serving_beam = self.serving_beam, beam
            return iq_pb2.ControlOutcome(success=True, detail=f"serving beam {previous} -> {beam}")
        if kind == "interference_mitigation":
            m = message.interference_mitigation
            if not m.kind:
                return iq_pb2.ControlOutcome(success=False, detail="interference kind missing")
            action = iq_pb2.MitigationAction.Name(m.action) if m.action in iq_pb2.MitigationAction.values() else None
            if action is None:
                return iq_pb2.ControlOutcome(success=False, detail=f"unknown mitigation action {m.action}")
            self.mitigations[m.kind] = action
            return iq_pb2.ControlOutcome(success=True, detail=f"{action} against {m.kind}")
        return iq_pb2.ControlOutcome(success=False, detail="empty control message")

    async def _check_headers(self, headers: e2t_pb2.RequestHeaders, context: grpc.aio.ServicerContext) -> None:
        if headers.e2_node_id != self.node_id:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"this is E2 node {self.node_id}, not {headers.e2_node_id!r}")
        try:
            messages.check_request_headers(headers)
        except ServiceModelMismatch as exc:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{self.node_id}: {exc}")
        except messages.EncodingMismatch as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{self.node_id}: {exc}")


class _SubscriptionServicer(e2t_pb2_grpc.SubscriptionServiceServicer):
    def __init__(self, node: SimulatedNode) -> None:
        self.node = node

    async def Subscribe(self, request, context):  # noqa: N802 (gRPC method name)
        # gRPC recognises streaming handlers by being async generator functions themselves.
        async for response in self.node._subscribe(request, context):
            yield response

    async def Unsubscribe(self, request, context):  # noqa: N802
        await self.node._check_headers(request.headers, context)
        self.node._unsubscribe(request)
        await asyncio.sleep(self.node.unsubscribe_delay_s)
        return e2t_pb2.UnsubscribeResponse(headers=messages.RESPONSE_HEADERS)


class _ControlServicer(e2t_pb2_grpc.ControlServiceServicer):
    def __init__(self, node: SimulatedNode) -> None:
        self.node = node

    async def Control(self, request, context):  # noqa: N802
        node = self.node
        await node._check_headers(request.headers, context)
        try:
            header = e2sm_iq.decode(iq_pb2.ControlHeader, request.message.header)
            message = e2sm_iq.decode(iq_pb2.ControlMessage, request.message.payload)
        except E2smDecodeError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{node.node_id}: {exc}")
        outcome = node._control(header, message)
        node.controls.append(ControlRecord(time.time_ns(), header.cell_id, header.task, message, outcome))
        log.info("e2 node %s control %s: %s", node.node_id, message.WhichOneof("kind"), outcome.detail)
        return messages.control_response(outcome)


class SimulatedNodes:
    """A group of nodes `e2node-0..N-1` on ports base_port.. (0: each on a free port) that share one
    frame pool per task, each node starting at a different place in it."""

    def __init__(
        self,
        count: int,
        *,
        tasks: Sequence[str] | None = None,  # None: the in-distribution tasks (xapp.data.PRETRAIN_TASKS)
        base_port: int = 0,
        host: str = "127.0.0.1",
        rate_hz: float = 100.0,
        snr_db: tuple[float, float] | None = None,
        seed: int = 0,
        pool_size: int = 64,
        id_prefix: str = "e2node-",
        tls: ServerTls | None = None,
        frames_per_indication: int = 1,
        samples: Mapping[str, int] | None = None,  # frame length per task where not its own
    ) -> None:
        if count < 1:
            raise SimError(f"need at least one node, got {count}")
        if tasks is None:
            from xapp.data import PRETRAIN_TASKS

            tasks = PRETRAIN_TASKS
        self.tasks = tuple(tasks)
        self.count = count
        self.base_port = base_port
        self.host = host
        self.rate_hz = rate_hz
        self.snr_db = snr_db
        self.seed = seed
        self.pool_size = pool_size
        self.id_prefix = id_prefix
        self.tls = tls
        self.frames_per_indication = frames_per_indication
        self.samples = dict(samples or {})
        self.nodes: list[SimulatedNode] = []

    async def start(self) -> None:
        if not self.nodes:
            pools = await asyncio.to_thread(build_pools, self.tasks, self.pool_size, self.seed, self.snr_db, self.samples)
            self.nodes = [
                SimulatedNode(
                    f"{self.id_prefix}{i}", pools, host=self.host, port=self.base_port + i if self.base_port else 0,
                    rate_hz=self.rate_hz, offset=i * 7, tls=self.tls, frames_per_indication=self.frames_per_indication,
                )
                for i in range(self.count)
            ]
        try:
            for node in self.nodes:
                await node.start()
        except SimError:
            await self.stop()
            raise

    async def stop(self) -> None:
        await asyncio.gather(*(node.stop() for node in self.nodes))

    async def __aenter__(self) -> SimulatedNodes:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def endpoints(self) -> list[NodeEndpoint]:
        return [node.endpoint for node in self.nodes]

    def __getitem__(self, node_id: str) -> SimulatedNode:
        for node in self.nodes:
            if node.node_id == node_id:
                return node
        raise KeyError(node_id)

    def __iter__(self):
        return iter(self.nodes)
