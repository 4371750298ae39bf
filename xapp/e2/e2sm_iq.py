"""E2SM-IQ, this project's service model, as bytes inside ONOS E2T messages.

ONOS E2T carries a service model's messages opaquely: EventTrigger.payload, Action.payload,
Indication.header/payload, ControlMessage.header/payload and ControlOutcome.payload. Here are the model's
identity, builders for its definitions and payloads, and `decode`, through which every E2SM-IQ
payload is parsed: bytes that do not parse raise E2smDecodeError naming the message.
RequestHeaders.service_model selects the model: anything but NAME/VERSION is refused with
ServiceModelMismatch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from xapp.e2.gen import e2sm_iq_pb2 as iq_pb2

NAME = "oran-e2sm-iq"
VERSION = "v1"

M = TypeVar("M", bound=Message)


class ServiceModelMismatch(Exception):
    """A request names a service model other than E2SM-IQ v1."""

    def __init__(self, name: str, version: str) -> None:
        super().__init__(f"service model {name!r} version {version!r} is not supported (only {NAME} {VERSION} is)")
        self.name = name
        self.version = version


class E2smDecodeError(Exception):
    """Service-model bytes that do not parse as the E2SM-IQ message they must be."""

    def __init__(self, what: str, detail: str) -> None:
        super().__init__(f"{what} is not an E2SM-IQ {what}: {detail}")
        self.what = what
        self.detail = detail


def check_service_model(name: str, version: str) -> None:
    if (name, version) != (NAME, VERSION):
        raise ServiceModelMismatch(name, version)


def decode(message_type: type[M], data: bytes) -> M:
    """Parse `data` as the E2SM-IQ `message_type` (e.g. iq_pb2.IndicationHeader)."""
    try:
        return message_type.FromString(data)
    except DecodeError as exc:
        raise E2smDecodeError(message_type.DESCRIPTOR.name, str(exc)) from None


def event_trigger(reporting_period_ms: int) -> bytes:
    """EventTrigger.payload: one Indication per `reporting_period_ms` (0: the node's own rate)."""
    return iq_pb2.EventTriggerDefinition(reporting_period_ms=reporting_period_ms).SerializeToString()


def action_definition(task: str, shape: tuple[int, int] = (0, 0)) -> bytes:
    """Action.payload of a REPORT action for `task` frames of `shape` (antennas, samples; 0, 0: any)."""
    return iq_pb2.ActionDefinition(task=task, antennas=shape[0], samples=shape[1]).SerializeToString()


def indication_message(iq: bytes, label: str | None = None, snr_db: float | None = None) -> bytes:
    """Indication.payload: the frame's I/Q bytes, with ground truth when a simulator knows it."""
    message = iq_pb2.IndicationMessage(iq=iq)
    if label is not None:
        message.label = label
    if snr_db is not None:
        message.snr_db = snr_db
    return message.SerializeToString()


def frames_message(iq: bytes, labels: Sequence[str] = (), snr_dbs: Sequence[float] = ()) -> bytes:
    """Indication.payload of a multi-frame Indication: the frames' I/Q bytes back to back, with one
    ground-truth label and SNR per frame when a simulator knows them."""
    return iq_pb2.IndicationMessage(iq=iq, labels=labels, snr_dbs=snr_dbs).SerializeToString()


def control_header(cell_id: str = "", task: str = "") -> bytes:
    """ControlMessage.header: the cell to act on and the decision stream that asked."""
    return iq_pb2.ControlHeader(cell_id=cell_id, task=task).SerializeToString()


def control_outcome(success: bool, detail: str) -> bytes:
    """ControlOutcome.payload."""
    return iq_pb2.ControlOutcome(success=success, detail=detail).SerializeToString()
