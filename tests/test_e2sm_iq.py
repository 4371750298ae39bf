"""E2SM-IQ as service-model bytes: its codec, and what a node, the subscriber and the descriptor
check refuse (a wrong service model or encoding, definitions that do not parse, an action for frames
of another shape)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from xapp.config import DescriptorError, load_descriptor
from xapp.e2 import e2sm_iq, messages
from xapp.e2.client import E2Subscriber
from xapp.e2.gen import e2sm_iq_pb2 as iq_pb2
from xapp.e2.gen import e2t_pb2, e2t_pb2_grpc
from xapp.e2.sim import SimulatedNode, build_pools
from xapp.e2.types import AppIdentity, Backoff, FrameLimits
from xapp.harness.demo import adapt_descriptor
from xapp.ops.metrics import Metrics
from xapp.vocab import NodeEndpoint

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent
APP = AppIdentity("test-xapp", "test-xapp-0")
BEAM_ONLY = FrameLimits(max_frame_bytes=1 << 16, tasks={"beam": (16, 64)}, deadline_ms=100, reporting_period_ms=25)


def test_definitions_round_trip_and_bad_bytes_name_the_message():
    request = messages.subscribe_request(APP, "e2node-0", "tx", BEAM_ONLY)
    assert request.headers.service_model.name == e2sm_iq.NAME and request.headers.encoding == e2t_pb2.PROTO
    trigger = e2sm_iq.decode(iq_pb2.EventTriggerDefinition, request.subscription.event_trigger.payload)
    assert trigger.reporting_period_ms == 25
    (action,) = request.subscription.actions
    definition = e2sm_iq.decode(iq_pb2.ActionDefinition, action.payload)
    assert (action.type, definition.task, definition.antennas, definition.samples) == (
        e2t_pb2.ACTION_TYPE_REPORT, "beam", 16, 64)
    message = e2sm_iq.decode(iq_pb2.IndicationMessage, e2sm_iq.indication_message(b"\x01" * 8, "beam03", 9.0))
    assert (message.iq, message.label, message.snr_db) == (b"\x01" * 8, "beam03", 9.0)
    assert not e2sm_iq.decode(iq_pb2.IndicationMessage, e2sm_iq.indication_message(b"")).HasField("label")
    with pytest.raises(e2sm_iq.E2smDecodeError, match="ControlOutcome"):
        e2sm_iq.decode(iq_pb2.ControlOutcome, b"\xff" * 8)
    with pytest.raises(e2sm_iq.ServiceModelMismatch, match="'oran-e2sm-kpm' version 'v2'.*oran-e2sm-iq v1"):
        e2sm_iq.check_service_model("oran-e2sm-kpm", "v2")


def test_descriptor_with_another_service_model_is_refused(tmp_path):
    def edit(doc: dict) -> None:
        doc["e2"]["service_model"] = {"name": "oran-e2sm-kpm", "version": "v2"}

    path = adapt_descriptor(ROOT / "descriptors" / "default.yaml", tmp_path / "descriptors" / "kpm.yaml",
                            nodes=[NodeEndpoint("e2node-0", "127.0.0.1:50051")], zmq_endpoint="tcp://127.0.0.1:5560",
                            redis_url="redis://127.0.0.1:6379/0", http_port=8080, edit=edit)
    with pytest.raises(DescriptorError) as info:
        load_descriptor(path)
    assert any(p.startswith("e2.service_model: service model 'oran-e2sm-kpm'") for p in info.value.problems)


def test_node_refuses_what_it_cannot_serve_with_a_clear_status():
    async def scenario() -> list[tuple[grpc.StatusCode, str]]:
        node = SimulatedNode("e2node-0", build_pools(["beam"], 2, seed=1), rate_hz=50)
        await node.start()
        good = messages.subscribe_request(APP, "e2node-0", "tx", BEAM_ONLY)
        wrong_model, wrong_encoding, bad_trigger, wrong_shape = (e2t_pb2.SubscribeRequest() for _ in range(4))
        for request in (wrong_model, wrong_encoding, bad_trigger, wrong_shape):
            request.CopyFrom(good)
        wrong_model.headers.service_model.version = "v9"
        wrong_encoding.headers.encoding = e2t_pb2.ASN1_PER
        bad_trigger.subscription.event_trigger.payload = b"\xff\xff"
        wrong_shape.subscription.actions[0].payload = e2sm_iq.action_definition("beam", (8, 128))
        statuses = []
        try:
            async with grpc.aio.insecure_channel(node.endpoint.address) as channel:
                stub = e2t_pb2_grpc.SubscriptionServiceStub(channel)
                first = await stub.Subscribe(good).read()
                assert first.WhichOneof("message") == "ack" and first.headers.encoding == e2t_pb2.PROTO
                for request in (wrong_model, wrong_encoding, bad_trigger, wrong_shape):
                    with pytest.raises(grpc.aio.AioRpcError) as info:
                        await stub.Subscribe(request).read()
                    statuses.append((info.value.code(), info.value.details()))
        finally:
            await node.stop()
        return statuses

    model, encoding, trigger, shape = asyncio.run(scenario())
    assert model[0] == grpc.StatusCode.UNIMPLEMENTED and "'v9'" in model[1] and "oran-e2sm-iq v1" in model[1]
    assert encoding[0] == grpc.StatusCode.INVALID_ARGUMENT and "ASN1_PER" in encoding[1]
    assert trigger[0] == grpc.StatusCode.INVALID_ARGUMENT and "EventTriggerDefinition" in trigger[1]
    assert shape == (grpc.StatusCode.INVALID_ARGUMENT,
                     "e2node-0: action 0 asks for beam frames of 8x128; this node's are 16x64")


class _AsnAcker(e2t_pb2_grpc.SubscriptionServiceServicer):
    """A server that acknowledges with ASN.1 PER payloads, which E2SM-IQ never is."""

    async def Subscribe(self, request, context):  # noqa: N802 (gRPC method name)
        yield e2t_pb2.SubscribeResponse(headers=e2t_pb2.ResponseHeaders(encoding=e2t_pb2.ASN1_PER),
                                        ack=e2t_pb2.Acknowledgement(channel_id="asn1"))
        await asyncio.sleep(30)


def test_subscriber_refuses_an_ack_for_another_encoding():
    async def scenario() -> tuple[float, bool]:
        server = grpc.aio.server()
        e2t_pb2_grpc.add_SubscriptionServiceServicer_to_server(_AsnAcker(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        metrics = Metrics()
        sub = E2Subscriber(NodeEndpoint("e2node-0", f"127.0.0.1:{port}"), APP, lambda r: None, metrics, BEAM_ONLY,
                           Backoff(initial_ms=20, max_ms=50, jitter=0.0))
        task = asyncio.create_task(sub.run())
        labels = {"node": "e2node-0", "cause": "bad_ack"}
        try:
            for _ in range(500):
                if (metrics.registry.get_sample_value("xapp_e2_resubscribes_total", labels) or 0) >= 2:
                    break
                await asyncio.sleep(0.01)
            return metrics.registry.get_sample_value("xapp_e2_resubscribes_total", labels) or 0, sub.up
        finally:
            await sub.stop()
            await task
            await server.stop(None)

    refused, up = asyncio.run(scenario())
    assert refused >= 2 and not up
