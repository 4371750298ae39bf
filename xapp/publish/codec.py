"""Decision on the wire: the protobuf `Decision` for ZMQ, flat string fields for Redis."""

from __future__ import annotations

from xapp.e2.gen import decision_pb2
from xapp.engine.decision import Decision


def topic(d: Decision) -> str:
    return f"{d.task}/{d.node_id}"


def to_proto(d: Decision) -> decision_pb2.Decision:
    return decision_pb2.Decision(
        node_id=d.node_id,
        task=d.task,
        label=d.label,
        class_index=d.class_index,
        confidence=d.confidence,
        exit_layer=d.exit,
        gflops=d.gflops,
        sequence_number=d.seq,
        t_indication_ns=d.t_node_ns,
        t_arrival_ns=d.t_arrival_ns,
        t_decision_ns=d.t_decision_ns,
        policy=d.policy,
    )


def encode(d: Decision) -> bytes:
    return to_proto(d).SerializeToString()


def decode(payload: bytes) -> decision_pb2.Decision:
    msg = decision_pb2.Decision()
    msg.ParseFromString(payload)
    return msg


def fields(d: Decision) -> dict[str, str]:
    """Redis hash / stream entry: every Decision field as text, keyed by its proto name."""
    return {
        "node_id": d.node_id,
        "task": d.task,
        "label": d.label,
        "class_index": str(d.class_index),
        "confidence": f"{d.confidence:.6f}",
        "exit_layer": str(d.exit),
        "gflops": f"{d.gflops:.6f}",
        "sequence_number": str(d.seq),
        "cell_id": d.cell_id,
        "t_indication_ns": str(d.t_node_ns),
        "t_arrival_ns": str(d.t_arrival_ns),
        "t_decision_ns": str(d.t_decision_ns),
        "policy": d.policy,
    }
