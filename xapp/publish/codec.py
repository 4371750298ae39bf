"""Decision on the wire: the protobuf `Decision` for ZMQ, flat text fields (packed in the Redis protocol) for Redis."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from itertools import repeat

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


def redis_entries(decisions: DecisionBatch | Iterable[Decision]) -> list[tuple[str, str, bytes]]:
    """(node, task, Redis entry) of every decision. The entry is the REDIS_FIELD_COUNT field/value
    pairs as Redis-protocol bulk strings, ready to follow an XADD's or HSET's key: each value as text,
    keyed by its proto name (node_id, task, label, class_index, confidence with 6 decimals, exit_layer,
    gflops with 6 decimals, sequence_number, cell_id, t_indication_ns, t_arrival_ns, t_decision_ns,
    policy). Built column by column: a value that repeats in the batch is packed once, and the rows
    are joined by map/zip rather than a Python loop per decision."""
    b = as_batch(decisions)
    columns = (
        _repeated(b"node_id", b.node_id, str.encode), _repeated(b"task", b.task, str.encode),
        _repeated(b"label", b.label, str.encode), _repeated(b"class_index", b.class_index, b"%d".__mod__),
        _each(b"confidence", b.confidence, b"%.6f".__mod__), _repeated(b"exit_layer", b.exit, b"%d".__mod__),
        _repeated(b"gflops", b.gflops, b"%.6f".__mod__), _each(b"sequence_number", b.seq, b"%d".__mod__),
        _repeated(b"cell_id", b.cell_id, str.encode), _each(b"t_indication_ns", b.t_node_ns, b"%d".__mod__),
        _repeated(b"t_arrival_ns", b.t_arrival_ns, b"%d".__mod__),
        _repeated(b"t_decision_ns", b.t_decision_ns, b"%d".__mod__), _repeated(b"policy", b.policy, str.encode),
    )
    return list(zip(b.node_id, b.task, map(b"".join, zip(*columns))))


def _repeated(name: bytes, column: list, text: Callable[[object], bytes]) -> Iterable[bytes]:
    """Field `name` with each value of a column whose values repeat (nodes, tasks, exits, stamps of
    one Indication): each distinct value packed once."""
    packed = {value: resp_bulk(name) + resp_bulk(text(value)) for value in set(column)}
    return map(packed.__getitem__, column)


def _each(name: bytes, column: list, text: Callable[[object], bytes]) -> Iterable[bytes]:
    """Field `name` with each value of a column whose values differ row to row, packed one by one."""
    head = resp_bulk(name)
    return map(b"".join, zip(repeat(head), map(resp_bulk, map(text, column))))
