"""A gRPC server in front of one E2 node that relays its streams byte for byte and injects faults
at the wire level: bytes that are not protobuf, a bad Acknowledgement, an Indication sent twice
(a replay), an aborted or ended stream, and outages of itself.

It is built on gRPC generic handlers over raw bytes, so it depends on the E2 service names only,
never on the message classes: what it sends is exactly what a broken or hostile node could send.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import AsyncIterator

import grpc

from xapp.e2.gen import e2t_pb2
from xapp.vocab import NodeEndpoint

SUBSCRIPTION_SERVICE = e2t_pb2.DESCRIPTOR.services_by_name["SubscriptionService"].full_name
CONTROL_SERVICE = e2t_pb2.DESCRIPTOR.services_by_name["ControlService"].full_name
NOT_PROTOBUF = b"\xff\xff\xff\xff\xff"  # a field tag whose varint never ends: no protobuf parser accepts it

# Faults on the next Subscribe stream (or its next message), and the resubscribe cause or reject
# reason the xApp must give each.
WIRE_FAULTS = {
    "not_protobuf": "bad_message",  # a stream message of bytes that do not parse
    "bad_ack": "bad_ack",  # the Acknowledgement replaced by bytes that do not parse
    "no_ack": "bad_ack",  # the Acknowledgement left out: the first message is an Indication
    "duplicate": "replay",  # an Indication sent twice (same bytes, so the same sequence number)
    "abort": "rpc_error",  # stream fails with UNAVAILABLE
    "end": "stream_end",  # stream ends cleanly
}
_ON_ACK = ("bad_ack", "no_ack")


class ProxyError(Exception):
    pass


class _Stream:
    end: str | None = None  # set by inject("abort" | "end")


class FaultProxy:
    """Listens on `host:port` (0: a free port) and forwards to `upstream` ("host:port")."""

    def __init__(self, node_id: str, upstream: str, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.node_id = node_id
        self.upstream = upstream
        self.host = host
        self.port = port
        self.injected: dict[str, int] = {kind: 0 for kind in WIRE_FAULTS}
        self._faults: deque[str] = deque()
        self._server: grpc.aio.Server | None = None
        self._channel: grpc.aio.Channel | None = None
        self._streams: set[_Stream] = set()

    @property
    def endpoint(self) -> NodeEndpoint:
        return NodeEndpoint(self.node_id, f"{self.host}:{self.port}")

    def inject(self, kind: str, count: int = 1) -> None:
        if kind not in WIRE_FAULTS:
            raise ProxyError(f"unknown wire fault {kind!r}; choose from {', '.join(WIRE_FAULTS)}")
        if kind in ("abort", "end"):
            for stream in self._streams:
                stream.end = kind
            self.injected[kind] += len(self._streams)
            return
        self._faults.extend([kind] * count)

    async def start(self) -> None:
        if self._server is not None:
            return
        self._channel = grpc.aio.insecure_channel(self.upstream)
        server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        server.add_generic_rpc_handlers((
            grpc.method_handlers_generic_handler(SUBSCRIPTION_SERVICE, {
                "Subscribe": grpc.unary_stream_rpc_method_handler(self._subscribe),
                "Unsubscribe": grpc.unary_unary_rpc_method_handler(self._relay(SUBSCRIPTION_SERVICE, "Unsubscribe")),
            }),
            grpc.method_handlers_generic_handler(CONTROL_SERVICE, {
                "Control": grpc.unary_unary_rpc_method_handler(self._relay(CONTROL_SERVICE, "Control")),
            }),
        ))
        port = server.add_insecure_port(f"{self.host}:{self.port}")
        if port == 0:
            raise ProxyError(f"{self.node_id}: cannot listen on {self.host}:{self.port}")
        self.port = port
        await server.start()
        self._server = server

    async def stop(self) -> None:
        server, self._server = self._server, None
        channel, self._channel = self._channel, None
        if server is not None:
            await server.stop(grace=None)
        if channel is not None:
            await channel.close()

    async def restart(self, downtime: float = 0.0) -> None:
        await self.stop()
        await asyncio.sleep(downtime)
        await self.start()

    def _take(self, kinds: tuple[str, ...]) -> str | None:
        if self._faults and self._faults[0] in kinds:
            kind = self._faults.popleft()
            self.injected[kind] += 1
            return kind
        return None

    async def _subscribe(self, request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        upstream = self._channel.unary_stream(f"/{SUBSCRIPTION_SERVICE}/Subscribe")(request)
        stream = _Stream()
        self._streams.add(stream)
        try:
            first = True
            async for message in upstream:
                if stream.end is not None:
                    break
                if first:
                    first = False
                    fault = self._take(_ON_ACK)
                    if fault == "bad_ack":
                        yield NOT_PROTOBUF
                    if fault is not None:
                        continue  # no_ack: the next message, an Indication, comes first
                else:
                    fault = self._take(("not_protobuf", "duplicate"))
                    if fault == "not_protobuf":
                        yield NOT_PROTOBUF
                    elif fault == "duplicate":
                        yield message
                yield message
            if stream.end == "abort":
                await context.abort(grpc.StatusCode.UNAVAILABLE, f"{self.node_id}: stream aborted (fault injection)")
        except grpc.aio.AioRpcError as exc:
            await context.abort(exc.code(), f"upstream: {exc.details()}")
        finally:
            self._streams.discard(stream)
            upstream.cancel()

    def _relay(self, service: str, method: str):
        async def relay(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            try:
                return await self._channel.unary_unary(f"/{service}/{method}")(request, timeout=context.time_remaining())
            except grpc.aio.AioRpcError as exc:
                await context.abort(exc.code(), f"upstream: {exc.details()}")

        return relay
