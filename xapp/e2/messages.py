"""ONOS E2T messages (onos.e2t.e2.v1beta1) as this xApp and its simulated nodes build and read them,
with the E2SM-IQ service model in their payload bytes."""

from __future__ import annotations

from xapp.e2 import e2sm_iq
from xapp.e2.gen import e2sm_iq_pb2 as iq_pb2
from xapp.e2.gen import e2t_pb2
from xapp.e2.types import AppIdentity, FrameLimits

# Every response says how its payloads are encoded; E2SM-IQ is PROTO-encoded only.
RESPONSE_HEADERS = e2t_pb2.ResponseHeaders(encoding=e2t_pb2.PROTO)


class EncodingMismatch(Exception):
    """A request asks for a payload encoding other than PROTO."""

    def __init__(self, encoding: int) -> None:
        name = e2t_pb2.Encoding.Name(encoding) if encoding in e2t_pb2.Encoding.values() else str(encoding)
        super().__init__(f"encoding {name} is not supported; {e2sm_iq.NAME} is PROTO-encoded")
        self.encoding = encoding


def request_headers(app: AppIdentity, node_id: str) -> e2t_pb2.RequestHeaders:
    return e2t_pb2.RequestHeaders(
        app_id=app.app_id,
        app_instance_id=app.app_instance_id,
        e2_node_id=node_id,
        service_model=e2t_pb2.ServiceModel(name=app.service_model, version=app.service_model_version),
        encoding=e2t_pb2.PROTO,
    )


def check_request_headers(headers: e2t_pb2.RequestHeaders) -> None:
    """Raises ServiceModelMismatch or EncodingMismatch unless the request speaks E2SM-IQ v1 in PROTO."""
    e2sm_iq.check_service_model(headers.service_model.name, headers.service_model.version)
    if headers.encoding != e2t_pb2.PROTO:
        raise EncodingMismatch(headers.encoding)


def subscribe_request(
    app: AppIdentity, node_id: str, transaction_id: str, limits: FrameLimits
) -> e2t_pb2.SubscribeRequest:
    """One REPORT action per task the xApp serves (sorted, ids 0..), each with its frame shape."""
    spec = e2t_pb2.SubscriptionSpec(
        event_trigger=e2t_pb2.EventTrigger(payload=e2sm_iq.event_trigger(limits.reporting_period_ms)),
        actions=[
            e2t_pb2.Action(id=i, type=e2t_pb2.ACTION_TYPE_REPORT, payload=e2sm_iq.action_definition(task, shape))
            for i, (task, shape) in enumerate(sorted(limits.tasks.items()))
        ],
    )
    return e2t_pb2.SubscribeRequest(
        headers=request_headers(app, node_id), transaction_id=transaction_id, subscription=spec
    )


def unsubscribe_request(app: AppIdentity, node_id: str, transaction_id: str) -> e2t_pb2.UnsubscribeRequest:
    return e2t_pb2.UnsubscribeRequest(headers=request_headers(app, node_id), transaction_id=transaction_id)


def control_request(
    app: AppIdentity, node_id: str, message: iq_pb2.ControlMessage, cell_id: str = "", task: str = ""
) -> e2t_pb2.ControlRequest:
    return e2t_pb2.ControlRequest(
        headers=request_headers(app, node_id),
        message=e2t_pb2.ControlMessage(
            header=e2sm_iq.control_header(cell_id, task), payload=message.SerializeToString()
        ),
    )


def control_response(outcome: iq_pb2.ControlOutcome) -> e2t_pb2.ControlResponse:
    return e2t_pb2.ControlResponse(
        headers=RESPONSE_HEADERS, outcome=e2t_pb2.ControlOutcome(payload=outcome.SerializeToString())
    )


def ack(channel_id: str) -> e2t_pb2.SubscribeResponse:
    return e2t_pb2.SubscribeResponse(headers=RESPONSE_HEADERS, ack=e2t_pb2.Acknowledgement(channel_id=channel_id))


def indication(header: bytes, payload: bytes) -> e2t_pb2.SubscribeResponse:
    """A stream message carrying an already encoded E2SM-IQ IndicationHeader and IndicationMessage."""
    return e2t_pb2.SubscribeResponse(
        headers=RESPONSE_HEADERS, indication=e2t_pb2.Indication(header=header, payload=payload)
    )
