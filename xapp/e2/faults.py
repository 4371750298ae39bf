"""Fault injection for the simulated E2 node: the malformed Indications it can send on purpose, and
the reject reason the xApp must count for each."""

from __future__ import annotations

import numpy as np

from xapp.e2 import e2sm_iq, messages
from xapp.e2.frames import IQ_DTYPE, encode_indication
from xapp.e2.gen import e2sm_iq_pb2 as iq_pb2
from xapp.e2.gen import e2t_pb2

# Malformed frame kinds the nodes can inject, and the reject reason the xApp must give each.
MALFORMED = {
    "length": "length",  # payload shorter than antennas * samples implies
    "nan": "non_finite",
    "unknown_task": "unknown_task",
    "oversize": "oversize",  # a consistent frame 64x the task's size
    "garbage_header": "bad_header",
    "garbage_payload": "bad_payload",
    "dtype": "dtype",  # complex int16 samples
    "shape": "shape",  # the right bytes declared with the wrong antennas x samples
    "wrong_node": "node_mismatch",
    "ancient_timestamp": "bad_timestamp",
    "future_timestamp": "bad_timestamp",
    "nan_sample_rate": "bad_metadata",
    "negative_sample_rate": "bad_metadata",
    "inf_center_frequency": "bad_metadata",
}
# Well-formed frames whose header carries an absurd value: kind -> (field, value).
ABSURD_HEADERS = {
    "ancient_timestamp": ("timestamp_ns", -(2**63)),
    "future_timestamp": ("timestamp_ns", 2**63 - 1),
    "nan_sample_rate": ("sample_rate_hz", float("nan")),
    "negative_sample_rate": ("sample_rate_hz", -1e6),
    "inf_center_frequency": ("center_frequency_hz", float("-inf")),
}


def malformed_indication(kind: str, header: iq_pb2.IndicationHeader, frame: np.ndarray) -> e2t_pb2.SubscribeResponse:
    """An Indication of `kind` (a key of MALFORMED) made from a good header and frame."""
    iq = frame.astype(IQ_DTYPE).tobytes()
    if kind == "length":
        iq = iq[:-IQ_DTYPE.itemsize]
    elif kind == "nan":
        bad = frame.copy()
        bad[0, len(bad[0]) // 2] = complex(np.nan, 0.0)
        iq = bad.astype(IQ_DTYPE).tobytes()
    elif kind == "unknown_task":
        header.task = "telepathy"
    elif kind == "oversize":
        header.samples *= 64
        iq = np.tile(frame, (1, 64)).astype(IQ_DTYPE).tobytes()
    elif kind == "garbage_header":
        return messages.indication(b"\xff" * 16, b"")
    elif kind == "garbage_payload":
        return messages.indication(header.SerializeToString(), b"\xff" * 16)
    elif kind == "dtype":
        header.sample_format = iq_pb2.SAMPLE_FORMAT_CI16_LE
        scaled = np.stack([frame.real, frame.imag], axis=-1) * 8192
        iq = np.clip(scaled, -32768, 32767).astype("<i2").tobytes()
    elif kind == "shape":
        header.antennas, header.samples = header.antennas * 2, header.samples // 2
    elif kind == "wrong_node":
        header.node_id = f"{header.node_id}-impostor"
    elif kind in ABSURD_HEADERS:
        setattr(header, *ABSURD_HEADERS[kind])
    return encode_indication(header, e2sm_iq.indication_message(iq))
