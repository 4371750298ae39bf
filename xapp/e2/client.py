"""E2 client side: one long-lived subscription per E2 node.

An E2Subscriber keeps a Subscribe stream to its node open for as long as it runs: it waits for the
Acknowledgement, validates every Indication and hands good frames to `submit`; rejected frames are
counted and logged and never affect the frames after them. Whatever ends a stream (an RPC error, a
clean end, a message that does not parse, a bad Acknowledgement, any exception in this task) leads to
a counted, logged resubscribe with exponential backoff and jitter: the task itself only ends on
stop(). Each subscriber runs as its own task, so a dead node delays nobody else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from enum import Enum
from typing import Callable

import grpc
from google.protobuf.message import DecodeError

from xapp.e2 import messages
from xapp.e2.e2sm_iq import E2smDecodeError, decode
from xapp.e2.frames import FrameRejected, decode_indication
from xapp.e2.gen import e2sm_iq_pb2 as iq_pb2
from xapp.e2.gen import e2t_pb2, e2t_pb2_grpc
from xapp.e2.sequence import SequenceGuard
from xapp.e2.tls import channel_credentials, channel_options
from xapp.e2.types import AppIdentity, Backoff, FrameLimits
from xapp.ops.metrics import Metrics
from xapp.vocab import NodeEndpoint, Request, TlsFiles

log = logging.getLogger(__name__)

# gRPC's own default receive limit; the per-frame limit is enforced per Indication instead, so that
# one oversized frame is rejected alone instead of failing the whole stream.
_GRPC_RECEIVE_LIMIT = 4 * 1024 * 1024


_SUBSCRIBE = f"/{e2t_pb2.DESCRIPTOR.services_by_name['SubscriptionService'].full_name}/Subscribe"


class Unparseable:
    """A stream message whose bytes are not a SubscribeResponse. (gRPC's own deserializer would log
    a traceback and hand over None; this one lets the subscriber say what happened, once.)"""

    def __init__(self, size: int, error: str) -> None:
        self.size = size
        self.error = error

    def __str__(self) -> str:
        return f"({self.size} bytes) does not parse as a SubscribeResponse: {self.error}"


def _parse_response(raw: bytes) -> e2t_pb2.SubscribeResponse | Unparseable:
    try:
        return e2t_pb2.SubscribeResponse.FromString(raw)
    except DecodeError as exc:
        return Unparseable(len(raw), str(exc))


class E2ProtocolError(Exception):
    """The node broke the subscription protocol. `cause` is the resubscribe metric's label:
    "bad_ack" (the first message is not a parseable Acknowledgement, or one for payloads not
    PROTO-encoded) or "bad_message" (a later stream message does not parse)."""

    def __init__(self, cause: str, detail: str) -> None:
        super().__init__(detail)
        self.cause = cause


class E2ControlError(Exception):
    """A Control request did not get an outcome from the node."""

    def __init__(self, node_id: str, detail: str) -> None:
        super().__init__(f"control to {node_id} failed: {detail}")
        self.node_id = node_id
        self.detail = detail


class LinkState(Enum):
    """Where a node's subscription stands. What an Ack means follows from it: the first one, a
    reconnect (counted), or the renewal that new limits asked for (not counted)."""

    CONNECTING = "connecting"  # subscribing, never acknowledged yet
    UP = "up"  # acknowledged and streaming
    RECONNECTING = "reconnecting"  # subscribing again after a stream that was up ended
    RENEWING = "renewing"  # the call is being cancelled to subscribe with new limits
    RENEWED = "renewed"  # subscribing with the new limits
    STOPPED = "stopped"  # stop() was called, or run() ended


_ACTIVE = frozenset(LinkState) - {LinkState.STOPPED}
# Every transition of LinkState, in one place: state -> the states it may go to.
TRANSITIONS: dict[LinkState, frozenset[LinkState]] = {
    LinkState.CONNECTING: frozenset({LinkState.UP, LinkState.RENEWING, LinkState.STOPPED}),
    LinkState.UP: frozenset({LinkState.RECONNECTING, LinkState.RENEWING, LinkState.STOPPED}),
    LinkState.RECONNECTING: frozenset({LinkState.UP, LinkState.RENEWING, LinkState.STOPPED}),
    LinkState.RENEWING: frozenset({LinkState.RENEWED, LinkState.STOPPED}),
    LinkState.RENEWED: frozenset({LinkState.UP, LinkState.CONNECTING, LinkState.RECONNECTING, LinkState.RENEWING,
                                  LinkState.STOPPED}),
    LinkState.STOPPED: frozenset(),
}


def own_task_cancelled() -> bool:
    """Whether the running task itself is being cancelled. grpc.aio also raises CancelledError for a
    call cancelled or cut short under it (a closed channel); only the task's own cancellation must go on."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class E2Subscriber:
    def __init__(
        self,
        node: NodeEndpoint,
        app: AppIdentity,
        submit: Callable[[Request], None],
        metrics: Metrics,
        limits: FrameLimits,
        backoff: Backoff | None = None,
        *,
        ack_timeout: float = 5.0,
        tls: TlsFiles | None = None,
    ) -> None:
        self.node = node
        self.app = app
        self._limits = limits
        self.backoff = backoff or Backoff()
        self.ack_timeout = ack_timeout
        self.tls = tls  # None: plaintext
        self._submit = submit
        self._metrics = metrics
        self._transaction_id = f"{app.app_instance_id}/{node.id}"
        self._channel: grpc.aio.Channel | None = None
        self._call: grpc.aio.UnaryStreamCall | None = None
        self._state = LinkState.CONNECTING
        self._down_since = time.monotonic()  # never up yet counts as down from construction
        self._ever_up = False  # whether any Ack has arrived: a failed renewal resubscribes as a reconnect then
        self._wake = asyncio.Event()
        self._sequence = SequenceGuard(limits.replay_window, metrics.seq_gaps.labels(node.id))

    @property
    def state(self) -> LinkState:
        return self._state

    @property
    def up(self) -> bool:
        """Acknowledged and streaming."""
        return self._state is LinkState.UP

    def down_for(self, now: float) -> float:
        """Seconds (time.monotonic() based) without a live subscription; 0 while up."""
        return 0.0 if self.up else max(0.0, now - self._down_since)

    def _enter(self, state: LinkState) -> None:
        """The one place the state changes: checks the transition and keeps the up/down metrics."""
        if state is self._state:
            return
        if state not in TRANSITIONS[self._state]:
            raise RuntimeError(f"e2 subscriber {self.node.id}: no transition {self._state.name} -> {state.name}")
        if self._state is LinkState.UP:
            self._down_since = time.monotonic()
            self._metrics.subscriptions_up.dec()
            self._metrics.node_up.labels(self.node.id).set(0)
        if state is LinkState.UP:
            if self._state is LinkState.RECONNECTING:
                self._metrics.reconnects.labels(self.node.id).inc()
            self._ever_up = True
            self._metrics.subscriptions_up.inc()
            self._metrics.node_up.labels(self.node.id).set(1)
        self._state = state

    def _ended(self) -> bool:
        """After a stream ended: move to the state the next attempt starts in. True: retry at once
        (a renewal), False: back off first."""
        if self._state is LinkState.RENEWING:
            self._enter(LinkState.RENEWED)
            return True
        if self._state in (LinkState.UP, LinkState.RENEWED):
            self._enter(LinkState.RECONNECTING if self._ever_up else LinkState.CONNECTING)
        return False

    async def run(self) -> None:
        """Subscribe and keep resubscribing until stop() or cancellation."""
        attempt = 0
        self._metrics.node_up.labels(self.node.id).set(0)
        try:
            while self._state is not LinkState.STOPPED:
                try:
                    await self._stream()
                    why, cause = "stream ended by node", "stream_end"
                except grpc.aio.AioRpcError as exc:
                    why, cause = f"{exc.code().name}: {exc.details()}", "rpc_error"
                except E2ProtocolError as exc:
                    why, cause = str(exc), exc.cause
                except TimeoutError:
                    why, cause = f"no acknowledgement within {self.ack_timeout:g} s", "ack_timeout"
                except asyncio.CancelledError:
                    # grpc raises CancelledError for a cancelled call (stop(), a new task set, or a read that
                    # wait_for cancelled as the Ack arrived); only a cancelled task ends, anything else resubscribes.
                    if own_task_cancelled():
                        raise
                    why, cause = "the call was cancelled", "rpc_error"
                except Exception as exc:  # noqa: BLE001 - supervision: no failure may end the node's task
                    log.exception("e2 subscriber for %s failed", self.node.id, extra={"node": self.node.id})
                    why, cause = f"{type(exc).__name__}: {exc}", "internal_error"
                if self._state is LinkState.STOPPED:
                    break
                acked = self.up  # this attempt was acknowledged: back off from the start again
                if self._ended():
                    attempt = 0
                    continue
                if acked:
                    attempt = 0
                delay = self.backoff.delay(attempt)
                attempt += 1
                self._metrics.resubscribes.labels(self.node.id, cause).inc()
                log.warning(
                    "e2 subscription to %s (%s) down: %s; resubscribing in %.0f ms",
                    self.node.id, self.node.address, why, delay * 1000,
                    extra={"node": self.node.id, "reason": why, "cause": cause},
                )
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                except TimeoutError:
                    pass
        finally:
            self._enter(LinkState.STOPPED)
            if self._channel is not None:
                channel, self._channel = self._channel, None
                await channel.close()

    @property
    def limits(self) -> FrameLimits:
        """What frames must look like. Assigning new limits (hot reload) applies from the next frame
        on; a changed task set, frame shape or reporting period renews the subscription at once (not
        counted as a reconnect), so that the node sends what is now asked for."""
        return self._limits

    @limits.setter
    def limits(self, limits: FrameLimits) -> None:
        def asked(limits: FrameLimits) -> tuple:
            return {task: tuple(shape) for task, shape in limits.tasks.items()}, limits.reporting_period_ms

        renew = asked(limits) != asked(self._limits)
        self._limits = limits
        if renew and self._call is not None and self._state in _ACTIVE:
            self._enter(LinkState.RENEWING)
            self._call.cancel()

    async def stop(self) -> None:
        """Unsubscribe (best effort) and make run() return."""
        was_up = self.up
        self._enter(LinkState.STOPPED)
        self._wake.set()
        if was_up and self._channel is not None:
            stub = e2t_pb2_grpc.SubscriptionServiceStub(self._channel)
            request = messages.unsubscribe_request(self.app, self.node.id, self._transaction_id)
            try:
                await stub.Unsubscribe(request, timeout=1.0)
            except grpc.aio.AioRpcError as exc:
                log.info("unsubscribe from %s failed: %s", self.node.id, exc.code().name)
            except (asyncio.CancelledError, grpc.aio.UsageError):
                # run() returned as the node ended the stream and closed the channel under this call;
                # only a cancellation of stop()'s own task goes on.
                if own_task_cancelled():
                    raise
                log.info("unsubscribe from %s cut short: the channel closed", self.node.id)
        if self._call is not None:
            self._call.cancel()

    async def control(
        self, message: iq_pb2.ControlMessage, *, cell_id: str = "", task: str = "", timeout: float = 2.0
    ) -> iq_pb2.ControlOutcome:
        """Send one E2 Control to the node and return its outcome; raises E2ControlError when the node
        cannot be reached or answers garbage. Works whether or not the subscription is up."""
        kind = message.WhichOneof("kind") or "empty"
        request = messages.control_request(self.app, self.node.id, message, cell_id, task)
        stub = e2t_pb2_grpc.ControlServiceStub(self._ensure_channel())
        try:
            response = await stub.Control(request, timeout=timeout)
            outcome = decode(iq_pb2.ControlOutcome, response.outcome.payload)
        except (grpc.aio.AioRpcError, E2smDecodeError) as exc:
            self._metrics.controls_sent.labels(self.node.id, kind, "error").inc()
            detail = f"{exc.code().name}: {exc.details()}" if isinstance(exc, grpc.aio.AioRpcError) else str(exc)
            raise E2ControlError(self.node.id, detail) from None
        self._metrics.controls_sent.labels(self.node.id, kind, "success" if outcome.success else "failure").inc()
        return outcome

    async def _stream(self) -> None:
        request = messages.subscribe_request(self.app, self.node.id, self._transaction_id, self.limits)
        call = self._ensure_channel().unary_stream(
            _SUBSCRIBE, request_serializer=e2t_pb2.SubscribeRequest.SerializeToString, response_deserializer=_parse_response
        )(request)
        self._call = call
        try:
            first = await asyncio.wait_for(call.read(), self.ack_timeout)
            if first is grpc.aio.EOF:
                return
            if isinstance(first, Unparseable):
                raise E2ProtocolError("bad_ack", f"first message {first}")
            if first.WhichOneof("message") != "ack":
                raise E2ProtocolError("bad_ack", f"first message is {first.WhichOneof('message')}, not an ack")
            if first.headers.encoding != e2t_pb2.PROTO:
                detail = messages.EncodingMismatch(first.headers.encoding)
                raise E2ProtocolError("bad_ack", f"the Acknowledgement's {detail}")
            self._set_up(first.ack.channel_id)
            while True:
                response = await call.read()
                if response is grpc.aio.EOF:
                    return
                if isinstance(response, Unparseable):
                    raise E2ProtocolError("bad_message", f"stream message {response}")
                if response.WhichOneof("message") == "indication":
                    self._handle(response.indication)
        finally:
            self._call = None
            call.cancel()

    def _handle(self, indication: e2t_pb2.Indication) -> None:
        try:
            requests = decode_indication(indication, self.node.id, self.limits, time.monotonic(), self._sequence)
        except FrameRejected as exc:
            self._metrics.frames_rejected.labels(self.node.id, exc.reason).inc(exc.frames)
            log.warning(
                "frame rejected: node=%s seq=%s reason=%s: %s", self.node.id, exc.seq, exc.reason, exc.detail,
                extra={"node": self.node.id, "seq": exc.seq, "reason": exc.reason},
            )
            return
        self._metrics.child(self._metrics.frames_in, self.node.id, requests[0].task).inc(len(requests))
        for request in requests:
            try:
                self._submit(request)
            except Exception:
                log.exception("submit failed for node=%s seq=%s", self.node.id, request.seq)

    def _set_up(self, channel_id: str) -> None:
        if self._state in (LinkState.RENEWING, LinkState.STOPPED):
            return  # an Ack that raced the cancel of its own call: that call is going away
        self._sequence = SequenceGuard(self.limits.replay_window, self._metrics.seq_gaps.labels(self.node.id))
        self._enter(LinkState.UP)
        log.info("e2 subscription to %s up (channel %s)", self.node.id, channel_id, extra={"node": self.node.id})

    def _ensure_channel(self) -> grpc.aio.Channel:
        if self._channel is None:
            initial = int(self.backoff.initial_ms)
            options = [
                ("grpc.max_receive_message_length",
                 max(_GRPC_RECEIVE_LIMIT, 2 * self.limits.max_frame_bytes * self.limits.max_frames_per_indication)),
                # Let our own backoff pace retries rather than the channel's (1 s .. 120 s).
                ("grpc.initial_reconnect_backoff_ms", initial),
                ("grpc.min_reconnect_backoff_ms", initial),
                ("grpc.max_reconnect_backoff_ms", int(self.backoff.max_ms)),
                *channel_options(self.tls),
            ]
            if self.tls is None:
                self._channel = grpc.aio.insecure_channel(self.node.address, options=options)
            else:
                self._channel = grpc.aio.secure_channel(self.node.address, channel_credentials(self.tls), options=options)
        return self._channel



class Subscribers(dict[str, E2Subscriber]):
    """This replica's subscribers by node id; a Control to a node goes through that node's subscriber."""

    async def control(self, node_id: str, message: iq_pb2.ControlMessage, cell_id: str, task: str) -> iq_pb2.ControlOutcome:
        sub = self.get(node_id)
        if sub is None:
            raise E2ControlError(node_id, "no subscription to the node to send a control through")
        return await sub.control(message, cell_id=cell_id, task=task)
