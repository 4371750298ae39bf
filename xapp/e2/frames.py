"""E2SM-IQ Indications: encoding (simulated nodes) and validating decoding (the xApp)."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import numpy as np

from xapp.e2 import messages
from xapp.e2.e2sm_iq import E2smDecodeError, decode
from xapp.e2.gen import e2sm_iq_pb2 as iq_pb2
from xapp.e2.gen import e2t_pb2
from xapp.e2.types import FrameLimits
from xapp.vocab import Request

if TYPE_CHECKING:
    from xapp.e2.sequence import SequenceGuard

IQ_DTYPE = np.dtype("<c8")
MAX_SAMPLE_RATE_HZ = 1e11  # beyond any ADC; a larger value is a corrupt header
MAX_CENTER_FREQUENCY_HZ = 3e11  # 300 GHz, the top of the sub-THz bands

# Reason codes, in the order the checks run. Size comes first so that nothing oversized is decoded.
REJECT_REASONS = (
    "oversize",  # header + payload bytes above max_frame_bytes per frame
    "bad_header",  # header bytes do not parse, lack node, task or dimensions, or claim too many frames
    "node_mismatch",  # header names another node than the one subscribed to
    "replay",  # sequence number already received on this subscription, or older than the replay window
    "bad_timestamp",  # node timestamp further from the xApp's clock than max_clock_skew_s
    "bad_metadata",  # sample rate or centre frequency not finite or out of range
    "unknown_task",  # task not served by this xApp
    "dtype",  # sample format other than complex64 little-endian
    "shape",  # antennas x samples differ from the task's frame shape
    "bad_payload",  # payload bytes do not parse
    "length",  # payload length differs from antennas * samples * 8 bytes
    "non_finite",  # NaN or Inf samples
)


class FrameRejected(Exception):
    """An Indication failed validation; `reason` is one of REJECT_REASONS."""

    def __init__(self, reason: str, detail: str, seq: int | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.seq = seq
        self.frames = 1  # frames the rejected Indication carried, as far as its header tells


def encode_indication(header: iq_pb2.IndicationHeader, payload: bytes) -> e2t_pb2.SubscribeResponse:
    """Wrap an IndicationHeader and an already serialized IndicationMessage into a stream message."""
    return messages.indication(header.SerializeToString(), payload)


def decode_indication(
    indication: e2t_pb2.Indication,
    node_id: str,
    limits: FrameLimits,
    t_arrival: float,
    sequence: SequenceGuard | None = None,
    now_ns: int | None = None,
) -> list[Request]:
    """Validate one Indication from `node_id` (one frame, or several of one task) and turn it into a
    Request per frame, in one pass over its header and samples; raises FrameRejected, which rejects the
    Indication whole. `sequence` tracks the subscription's sequence numbers (replays, gaps); `now_ns`
    is the wall clock the node's timestamp is checked against (default: now)."""
    header_bytes, payload_bytes = indication.header, indication.payload  # each read of a bytes field copies it
    size = len(header_bytes) + len(payload_bytes)
    largest = limits.max_frame_bytes * limits.max_frames_per_indication
    if size > largest:
        raise FrameRejected("oversize", f"{size} bytes > max_frame_bytes {limits.max_frame_bytes} x "
                            f"{limits.max_frames_per_indication} frames")
    try:
        header = decode(iq_pb2.IndicationHeader, header_bytes)
    except E2smDecodeError as exc:
        raise FrameRejected("bad_header", f"header does not parse: {exc}") from None
    try:
        return _frames(payload_bytes, header, node_id, limits, t_arrival, size, sequence, now_ns)
    except FrameRejected as exc:
        if header.frames <= limits.max_frames_per_indication:  # a header claiming more is not believed
            exc.frames = max(1, header.frames)
        raise


def _frames(payload_bytes: bytes, header: iq_pb2.IndicationHeader, node_id: str, limits: FrameLimits,
            t_arrival: float, size: int, sequence: SequenceGuard | None, now_ns: int | None) -> list[Request]:
    seq = header.sequence_number
    frames = max(1, header.frames)
    if not header.node_id or not header.task or header.antennas == 0 or header.samples == 0:
        raise FrameRejected("bad_header", "header lacks node_id, task, antennas or samples", seq)
    if frames > limits.max_frames_per_indication:
        raise FrameRejected("bad_header", f"{frames} frames in one Indication > {limits.max_frames_per_indication}", seq)
    if size > limits.max_frame_bytes * frames:
        raise FrameRejected("oversize", f"{size} bytes > max_frame_bytes {limits.max_frame_bytes} x {frames} frames", seq)
    if header.node_id != node_id:
        raise FrameRejected("node_mismatch", f"header node_id {header.node_id!r}", seq)
    if sequence is not None:
        for i in range(frames):
            sequence.admit(seq + i)
    _check_sanity(header, limits, time.time_ns() if now_ns is None else now_ns)
    shape = limits.tasks.get(header.task)
    if shape is None:
        raise FrameRejected("unknown_task", f"task {header.task!r} not in {sorted(limits.tasks)}", seq)
    if header.sample_format != iq_pb2.SAMPLE_FORMAT_CF32_LE:
        raise FrameRejected("dtype", f"sample_format {header.sample_format}, expected 0 (CF32_LE)", seq)
    if (header.antennas, header.samples) != tuple(shape):
        raise FrameRejected(
            "shape", f"{header.antennas}x{header.samples}, task {header.task} needs {shape[0]}x{shape[1]}", seq
        )
    try:
        payload = decode(iq_pb2.IndicationMessage, payload_bytes)
    except E2smDecodeError as exc:
        raise FrameRejected("bad_payload", f"payload does not parse: {exc}", seq) from None
    iq = payload.iq
    expected = frames * header.antennas * header.samples * IQ_DTYPE.itemsize
    if len(iq) != expected:
        raise FrameRejected("length", f"{len(iq)} I/Q bytes, header implies {expected}", seq)
    samples = np.frombuffer(iq, dtype=IQ_DTYPE).reshape(frames, header.antennas, header.samples)
    if not np.isfinite(samples.view(np.float32)).all():
        raise FrameRejected("non_finite", "NaN or Inf samples", seq)
    labels = _labels(payload, frames)
    deadline = t_arrival + limits.deadline_ms / 1000.0
    task, cell_id, t_node_ns, interval_ns = header.task, header.cell_id, header.timestamp_ns, header.frame_interval_ns
    return [
        Request(node_id=node_id, task=task, frame=samples[i], seq=seq + i, cell_id=cell_id,
                t_node_ns=t_node_ns + i * interval_ns, t_arrival=t_arrival, deadline=deadline, label=labels[i])
        for i in range(frames)
    ]


def _labels(payload: iq_pb2.IndicationMessage, frames: int) -> list[str | None]:
    """Ground truth per frame, when a simulator sent it (`labels` for several frames, `label` for one)."""
    if len(payload.labels) == frames:
        return list(payload.labels)
    if frames == 1 and payload.HasField("label"):
        return [payload.label]
    return [None] * frames


def _check_sanity(header: iq_pb2.IndicationHeader, limits: FrameLimits, now_ns: int) -> None:
    """Well-formed but absurd headers: a timestamp far from now, impossible radio metadata."""
    seq = header.sequence_number
    skew_s = (header.timestamp_ns - now_ns) / 1e9
    if abs(skew_s) > limits.max_clock_skew_s:
        raise FrameRejected(
            "bad_timestamp", f"timestamp_ns {header.timestamp_ns} is {skew_s:+.3g} s from now "
            f"(max_clock_skew_s {limits.max_clock_skew_s:g})", seq,
        )
    rate, centre = header.sample_rate_hz, header.center_frequency_hz
    if not (math.isfinite(rate) and 0 < rate <= MAX_SAMPLE_RATE_HZ):
        raise FrameRejected("bad_metadata", f"sample_rate_hz {rate} outside (0, {MAX_SAMPLE_RATE_HZ:g}]", seq)
    if not (math.isfinite(centre) and 0 <= centre <= MAX_CENTER_FREQUENCY_HZ):
        raise FrameRejected(
            "bad_metadata", f"center_frequency_hz {centre} outside [0, {MAX_CENTER_FREQUENCY_HZ:g}]", seq
        )
