"""The ONOS side of the interop tests, run in a virtualenv of its own that holds onos-api (its
betterproto + grpclib code pins protobuf 3, which cannot sit beside this project's protobuf 7). It
imports nothing of this project: every E2T message here is onos-api's, and the E2SM-IQ bytes it
carries come from the test, as an ONOS service model's bytes come from its own library.

    python onos_e2t_peer.py codec CONFIG      decode the test's messages; encode onos-api's own
    python onos_e2t_peer.py subscribe CONFIG  subscribe, control and unsubscribe as an xApp would
    python onos_e2t_peer.py serve CONFIG      serve Subscribe/Unsubscribe/Control as onos-e2t would

Results are JSON lines on stdout. Messages are shown as `fields`: field name -> value, bytes as
hex, enums as numbers, durations in seconds, only the set member of a oneof.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
import sys
from datetime import timedelta

import betterproto
from betterproto.grpc.grpclib_server import ServiceBase
from grpclib.client import Channel
from grpclib.const import Cardinality, Handler
from grpclib.exceptions import GRPCError
from grpclib.server import Server
from onos_api.e2t.e2.v1beta1 import (
    Acknowledgement,
    Action,
    ActionType,
    ControlMessage,
    ControlOutcome,
    ControlRequest,
    ControlResponse,
    ControlServiceStub,
    Encoding,
    EventTrigger,
    Indication,
    RequestHeaders,
    ResponseHeaders,
    ServiceModel,
    SubscribeRequest,
    SubscribeResponse,
    SubscriptionServiceStub,
    SubscriptionSpec,
    SubsequentAction,
    SubsequentActionType,
    TimeToWait,
    UnsubscribeRequest,
    UnsubscribeResponse,
)

PACKAGE = "/onos.e2t.e2.v1beta1"
MESSAGES = {cls.__name__: cls for cls in (
    SubscribeRequest, SubscribeResponse, UnsubscribeRequest, UnsubscribeResponse, ControlRequest, ControlResponse)}


def fields(message: betterproto.Message) -> dict:
    out = {}
    for field in dataclasses.fields(message):
        group = field.metadata["betterproto"].group
        if group is not None and betterproto.which_one_of(message, group)[0] != field.name:
            continue
        out[field.name] = plain(getattr(message, field.name))
    return out


def plain(value):
    if isinstance(value, betterproto.Message):
        return fields(value)
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, enum.Enum):
        return int(value.value)
    return value


def emit(**record) -> None:
    print(json.dumps(record), flush=True)


def headers(cfg: dict) -> RequestHeaders:
    return RequestHeaders(
        app_id=cfg["app_id"], app_instance_id=cfg["app_instance_id"], e2_node_id=cfg["node_id"],
        service_model=ServiceModel(name=cfg["service_model"][0], version=cfg["service_model"][1]),
        encoding=Encoding.PROTO,
    )


def native_messages(sm: dict) -> list[betterproto.Message]:
    """One of each message, built with onos-api's own classes; every field set."""
    h = RequestHeaders(app_id="onos-app", app_instance_id="onos-app-7", e2_node_id="e2:1/5153",
                       service_model=ServiceModel(name="oran-e2sm-iq", version="v1"), encoding=Encoding.PROTO)
    spec = SubscriptionSpec(
        event_trigger=EventTrigger(payload=bytes.fromhex(sm["event_trigger"])),
        actions=[
            Action(id=i, type=ActionType.ACTION_TYPE_REPORT, payload=bytes.fromhex(p),
                   subsequent_action=SubsequentAction(type=SubsequentActionType.SUBSEQUENT_ACTION_TYPE_WAIT,
                                                      time_to_wait=TimeToWait.TIME_TO_WAIT_W10MS))
            for i, p in enumerate(sm["actions"])
        ],
    )
    response_headers = ResponseHeaders(encoding=Encoding.ASN1_PER)
    return [
        SubscribeRequest(headers=h, transaction_id="onos-tx-1", subscription=spec,
                         transaction_timeout=timedelta(seconds=2.25)),
        SubscribeResponse(headers=response_headers, ack=Acknowledgement(channel_id="onos-channel-9")),
        SubscribeResponse(headers=response_headers, indication=Indication(
            header=bytes.fromhex(sm["indication_header"]), payload=bytes.fromhex(sm["indication_message"]),
            call_process_id=b"\x01\x02")),
        ControlRequest(headers=h, message=ControlMessage(
            header=bytes.fromhex(sm["control_header"]), payload=bytes.fromhex(sm["control_message"])),
            call_process_id=b"\x03"),
        ControlResponse(headers=response_headers, outcome=ControlOutcome(payload=bytes.fromhex(sm["control_outcome"]))),
    ]


def codec(cfg: dict) -> None:
    decoded = [fields(MESSAGES[m["type"]]().parse(bytes.fromhex(m["hex"]))) for m in cfg["decode"]]
    native = [{"type": type(m).__name__, "hex": bytes(m).hex(), "fields": fields(m)}
              for m in native_messages(cfg["sm"])]
    emit(decoded=decoded, native=native)


async def subscribe(cfg: dict) -> None:
    """Subscribe with the test's E2SM-IQ definitions and collect `count` Indications; unsubscribe;
    subscribe with a service model the node does not speak; send one Control."""
    channel = Channel(cfg["host"], cfg["port"])
    try:
        subscriptions = SubscriptionServiceStub(channel)
        spec = SubscriptionSpec(
            event_trigger=EventTrigger(payload=bytes.fromhex(cfg["event_trigger"])),
            actions=[Action(id=i, type=ActionType.ACTION_TYPE_REPORT, payload=bytes.fromhex(p))
                     for i, p in enumerate(cfg["actions"])],
        )
        responses = []
        async for response in subscriptions.subscribe(
                headers=headers(cfg), transaction_id=cfg["transaction_id"], subscription=spec):
            responses.append(fields(response))
            if len(responses) > cfg["count"]:
                break
        unsubscribed = await subscriptions.unsubscribe(headers=headers(cfg), transaction_id=cfg["transaction_id"])
        wrong = {**cfg, "service_model": cfg["wrong_service_model"]}
        try:
            async for _ in subscriptions.subscribe(headers=headers(wrong), transaction_id="wrong", subscription=spec):
                break
            refused = None
        except GRPCError as exc:
            refused = {"status": exc.status.name, "message": exc.message}
        control = await ControlServiceStub(channel).control(
            headers=headers(cfg),
            message=ControlMessage(header=bytes.fromhex(cfg["control_header"]),
                                   payload=bytes.fromhex(cfg["control_message"])),
        )
    finally:
        channel.close()
    emit(responses=responses, unsubscribe=fields(unsubscribed), refused=refused, control=fields(control))


class Relay(ServiceBase):
    """onos-e2t as an xApp sees it: SubscriptionService and ControlService on onos-api's messages.
    onos-api 0.10.31 generates client stubs only, so this is what betterproto generates as a server
    base: a ServiceBase whose __mapping__ routes the ONOS method paths to handlers. Indications relay the E2SM-IQ bytes the test writes to stdin (JSON lines {header, payload}, hex);
    every request is reported on stdout."""

    def __init__(self, cfg: dict) -> None:
        self.outcome = bytes.fromhex(cfg["control_outcome"])
        self.frames: asyncio.Queue[tuple[bytes, bytes]] = asyncio.Queue(maxsize=64)
        self.streams = 0

    def __mapping__(self) -> dict[str, Handler]:
        return {
            f"{PACKAGE}.SubscriptionService/Subscribe": Handler(
                self.subscribe, Cardinality.UNARY_STREAM, SubscribeRequest, SubscribeResponse),
            f"{PACKAGE}.SubscriptionService/Unsubscribe": Handler(
                self.unsubscribe, Cardinality.UNARY_UNARY, UnsubscribeRequest, UnsubscribeResponse),
            f"{PACKAGE}.ControlService/Control": Handler(
                self.control, Cardinality.UNARY_UNARY, ControlRequest, ControlResponse),
        }

    async def subscribe(self, stream) -> None:
        request = await stream.recv_message()
        emit(subscribe=fields(request))
        response_headers = ResponseHeaders(encoding=Encoding.PROTO)
        await stream.send_message(SubscribeResponse(
            headers=response_headers, ack=Acknowledgement(channel_id=f"relay/{request.transaction_id}")))
        self.streams += 1
        try:
            while True:
                header, payload = await self.frames.get()
                await stream.send_message(SubscribeResponse(
                    headers=response_headers, indication=Indication(header=header, payload=payload)))
        finally:
            self.streams -= 1

    async def unsubscribe(self, stream) -> None:
        emit(unsubscribe=fields(await stream.recv_message()))
        await stream.send_message(UnsubscribeResponse(headers=ResponseHeaders(encoding=Encoding.PROTO)))

    async def control(self, stream) -> None:
        emit(control=fields(await stream.recv_message()))
        await stream.send_message(ControlResponse(
            headers=ResponseHeaders(encoding=Encoding.PROTO), outcome=ControlOutcome(payload=self.outcome)))

    async def feed(self) -> None:
        """Frames from stdin go to the subscriber; without one they are dropped, as a node's would be."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            frame = json.loads(line)
            if self.streams and not self.frames.full():
                self.frames.put_nowait((bytes.fromhex(frame["header"]), bytes.fromhex(frame["payload"])))


async def serve(cfg: dict) -> None:
    relay = Relay(cfg)
    server = Server([relay])
    await server.start(cfg["host"], cfg["port"])
    emit(listening=cfg["port"])
    try:
        await relay.feed()  # until the test closes stdin
    finally:
        server.close()
        await server.wait_closed()


def main() -> None:
    mode, path = sys.argv[1], sys.argv[2]
    with open(path) as f:
        cfg = json.load(f)
    if mode == "codec":
        codec(cfg)
    elif mode == "subscribe":
        asyncio.run(subscribe(cfg))
    elif mode == "serve":
        asyncio.run(serve(cfg))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
