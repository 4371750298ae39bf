"""Decision on the wire: the protobuf `Decision` for ZMQ, flat text fields (packed in the Redis protocol) for Redis."""

from __future__ import annotations

import functools
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
        out.append((_topic(row[1], row[0]), msg.SerializeToString()))
    return out


@functools.lru_cache(maxsize=4096)
def _topic(task: str, node_id: str) -> bytes:
    return f"{task}/{node_id}".encode()


def decode(payload: bytes) -> decision_pb2.Decision:
    msg = decision_pb2.Decision()
    msg.ParseFromString(payload)
    return msg


def resp_bulk(value: bytes) -> bytes:
    """One bulk string of the Redis protocol."""
    return b"$%d\r\n%b\r\n" % (len(value), value)


REDIS_FIELD_COUNT = 13  # field/value pairs in every Redis entry


@functools.lru_cache(maxsize=4096)
def _text_field(name: str, value: str) -> bytes:
    return resp_bulk(name.encode()) + resp_bulk(value.encode())


def redis_entries(decisions: DecisionBatch | Iterable[Decision]) -> list[tuple[str, str, bytes]]:
    """(node, task, Redis entry) of every decision. The entry is the REDIS_FIELD_COUNT field/value
    pairs as Redis-protocol bulk strings, ready to follow an XADD's or HSET's key: each value as text,
    keyed by its proto name (node_id, task, label, class_index, confidence with 6 decimals, exit_layer,
    gflops with 6 decimals, sequence_number, cell_id, t_indication_ns, t_arrival_ns, t_decision_ns,
    policy). Packed once per decision here, with the text fields' bulk strings cached."""
    b = as_batch(decisions)
    return [
        (node, task, b"".join((
            _text_field("node_id", node), _text_field("task", task), _text_field("label", label),
            _CLASS_INDEX, resp_bulk(b"%d" % c), _CONFIDENCE, resp_bulk(b"%.6f" % conf),
            _EXIT_LAYER, resp_bulk(b"%d" % k), _GFLOPS, resp_bulk(b"%.6f" % g),
            _SEQUENCE_NUMBER, resp_bulk(b"%d" % seq), _text_field("cell_id", cell),
            _T_INDICATION, resp_bulk(b"%d" % tn), _T_ARRIVAL, resp_bulk(b"%d" % ta),
            _T_DECISION, resp_bulk(b"%d" % td), _text_field("policy", policy),
        )))
        for node, task, label, c, conf, k, g, seq, cell, tn, ta, td, policy in zip(
            b.node_id, b.task, b.label, b.class_index, b.confidence, b.exit, b.gflops, b.seq, b.cell_id, b.t_node_ns,
            b.t_arrival_ns, b.t_decision_ns, b.policy)
    ]


_CLASS_INDEX, _CONFIDENCE, _EXIT_LAYER, _GFLOPS, _SEQUENCE_NUMBER, _T_INDICATION, _T_ARRIVAL, _T_DECISION = (
    resp_bulk(name) for name in (b"class_index", b"confidence", b"exit_layer", b"gflops", b"sequence_number",
                                 b"t_indication_ns", b"t_arrival_ns", b"t_decision_ns"))
