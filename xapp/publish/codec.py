"""Decision on the wire: the protobuf `Decision` for ZMQ, flat string fields for Redis."""

from __future__ import annotations

from collections.abc import Iterable

from xapp.e2.gen import decision_pb2
from xapp.vocab import Decision, DecisionBatch, as_batch


def encoded(decisions: DecisionBatch | Iterable[Decision]) -> list[tuple[bytes, bytes]]:
    """(topic, protobuf payload) of every decision, serialised in one pass over the columns."""
    b = as_batch(decisions)
    msg = decision_pb2.Decision()
    out = []
    for row in zip(b.node_id, b.task, b.label, b.class_index, b.confidence, b.exit, b.gflops, b.seq, b.t_node_ns,
                   b.t_arrival_ns, b.t_decision_ns, b.policy):
        (msg.node_id, msg.task, msg.label, msg.class_index, msg.confidence, msg.exit_layer, msg.gflops,
         msg.sequence_number, msg.t_indication_ns, msg.t_arrival_ns, msg.t_decision_ns, msg.policy) = row
        out.append((f"{row[1]}/{row[0]}".encode(), msg.SerializeToString()))
    return out


def decode(payload: bytes) -> decision_pb2.Decision:
    msg = decision_pb2.Decision()
    msg.ParseFromString(payload)
    return msg


def redis_fields(decisions: DecisionBatch | Iterable[Decision]) -> list[tuple[str, str, dict[str, str]]]:
    """(node, task, Redis hash / stream entry) of every decision: each field as text, keyed by its proto name."""
    b = as_batch(decisions)
    return [
        (node, task, {
            "node_id": node, "task": task, "label": label, "class_index": str(c), "confidence": f"{conf:.6f}",
            "exit_layer": str(k), "gflops": f"{g:.6f}", "sequence_number": str(seq), "cell_id": cell,
            "t_indication_ns": str(tn), "t_arrival_ns": str(ta), "t_decision_ns": str(td), "policy": policy,
        })
        for node, task, label, c, conf, k, g, seq, cell, tn, ta, td, policy in zip(
            b.node_id, b.task, b.label, b.class_index, b.confidence, b.exit, b.gflops, b.seq, b.cell_id, b.t_node_ns,
            b.t_arrival_ns, b.t_decision_ns, b.policy)
    ]
