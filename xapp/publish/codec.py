"""Decisions on the wire, in one of two forms (the descriptor's publish.wire):

- `decision`: one protobuf `Decision` per frame on ZMQ, and one Redis stream entry of flat text fields
  (packed in the Redis protocol) per frame;
- `batch`: the decisions of one task and node released together as one protobuf `DecisionBatch`
  (columns), serialised once and sent as one ZMQ message and one Redis stream entry.

In both forms the Redis hash `decision:<node>:<task>` holds the latest decision's text fields."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter

from xapp.e2.gen import decision_pb2
from xapp.vocab import Decision, DecisionBatch, as_batch

BATCH_PART = b"DecisionBatch"  # ZMQ: the middle part of a batch message, between topic and payload


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


def decode_batch(payload: bytes) -> list[decision_pb2.Decision]:
    """The decisions of a `DecisionBatch` payload, one `Decision` message each."""
    batch = decision_pb2.DecisionBatch()
    batch.ParseFromString(payload)
    names = [name for name, _ in _BATCH_COLUMNS]
    return [decision_pb2.Decision(node_id=batch.node_id, task=batch.task, **dict(zip(names, row)))
            for row in zip(*(getattr(batch, name) for name in names))]


def decode_message(parts: Sequence[bytes]) -> list[tuple[str, decision_pb2.Decision]]:
    """(topic, decision) of every decision in one ZMQ message of either wire form."""
    if len(parts) == 2:
        return [(parts[0].decode(), decode(parts[1]))]
    if len(parts) == 3 and parts[1] == BATCH_PART:
        topic = parts[0].decode()
        return [(topic, d) for d in decode_batch(parts[2])]
    raise ValueError(f"not a decision message: {len(parts)} parts (a Decision has 2: topic, payload; a "
                     f"DecisionBatch 3: topic, {BATCH_PART.decode()}, payload)")


@dataclass(frozen=True, slots=True)
class WireGroup:
    """The decisions of one task and node in one released batch, serialised once for every sink."""

    task: str
    node_id: str
    count: int
    payload: bytes  # protobuf DecisionBatch
    latest: bytes  # the last decision's Redis fields, as in redis_entries

    @property
    def topic(self) -> bytes:
        return _topic(self.task, self.node_id)


# DecisionBatch field <- DecisionBatch (xapp.vocab) column, for every field but node_id and task.
_BATCH_COLUMNS = (("label", "label"), ("class_index", "class_index"), ("confidence", "confidence"),
                  ("exit_layer", "exit"), ("gflops", "gflops"), ("sequence_number", "seq"),
                  ("t_indication_ns", "t_node_ns"), ("t_arrival_ns", "t_arrival_ns"),
                  ("t_decision_ns", "t_decision_ns"), ("policy", "policy"))


def wire_groups(decisions: DecisionBatch | Iterable[Decision]) -> list[WireGroup]:
    """One WireGroup per (task, node) of `decisions`, in order of first appearance. Columns go into
    the protobuf by `extend` (no Python step per decision); only grouping the rows looks at each."""
    b = as_batch(decisions)
    if not len(b):
        return []
    rows: dict[tuple[str, str], list[int]] = {}
    for i, key in enumerate(zip(b.task, b.node_id)):
        rows.setdefault(key, []).append(i)
    out = []
    for (task, node_id), index in rows.items():
        pick = (lambda column: column) if len(index) == len(b) else _picker(index)
        msg = decision_pb2.DecisionBatch(node_id=node_id, task=task)
        for name, column in _BATCH_COLUMNS:
            getattr(msg, name).extend(pick(getattr(b, column)))
        out.append(WireGroup(task, node_id, len(index), msg.SerializeToString(), redis_fields(b, index[-1])))
    return out


def _picker(index: list[int]) -> Callable[[list], Sequence]:
    """The values of a column at `index` (a tuple, by one C-level call)."""
    if len(index) == 1:
        return lambda column: (column[index[0]],)
    return itemgetter(*index)


def resp_bulk(value: bytes) -> bytes:
    """One bulk string of the Redis protocol."""
    return b"$%d\r\n%b\r\n" % (len(value), value)


_INT, _FLOAT6 = b"%d".__mod__, b"%.6f".__mod__
# The Redis fields of a decision: (name, DecisionBatch column, text of a value, whether values repeat
# within a batch, so that each distinct one is packed once).
_REDIS_FIELDS: tuple[tuple[bytes, str, Callable[[object], bytes], bool], ...] = (
    (b"node_id", "node_id", str.encode, True), (b"task", "task", str.encode, True),
    (b"label", "label", str.encode, True), (b"class_index", "class_index", _INT, True),
    (b"confidence", "confidence", _FLOAT6, False), (b"exit_layer", "exit", _INT, True),
    (b"gflops", "gflops", _FLOAT6, True), (b"sequence_number", "seq", _INT, False),
    (b"cell_id", "cell_id", str.encode, True), (b"t_indication_ns", "t_node_ns", _INT, False),
    (b"t_arrival_ns", "t_arrival_ns", _INT, True), (b"t_decision_ns", "t_decision_ns", _INT, True),
    (b"policy", "policy", str.encode, True),
)
REDIS_FIELD_COUNT = len(_REDIS_FIELDS)  # field/value pairs in every Redis entry


def redis_entries(decisions: DecisionBatch | Iterable[Decision]) -> list[tuple[str, str, bytes]]:
    """(node, task, Redis entry) of every decision. The entry is the REDIS_FIELD_COUNT field/value
    pairs as Redis-protocol bulk strings, ready to follow an XADD's or HSET's key: each value as text,
    keyed by its proto name (node_id, task, label, class_index, confidence with 6 decimals, exit_layer,
    gflops with 6 decimals, sequence_number, cell_id, t_indication_ns, t_arrival_ns, t_decision_ns,
    policy). Built column by column: a value that repeats in the batch is packed once, and the rows
    are joined by map/zip rather than a Python loop per decision."""
    b = as_batch(decisions)
    columns = [(_repeated if repeats else _each)(name, getattr(b, column), text)
               for name, column, text, repeats in _REDIS_FIELDS]
    return list(zip(b.node_id, b.task, map(b"".join, zip(*columns))))


# One decision's entry as a single format: each field's name packed, then its value's length and bytes.
_ONE_ENTRY = b"".join(resp_bulk(name).replace(b"%", b"%%") + b"$%d\r\n%b\r\n" for name, *_ in _REDIS_FIELDS)


def redis_fields(b: DecisionBatch, row: int) -> bytes:
    """The Redis entry of decision `row` alone, as `redis_entries` packs it."""
    values = [text(getattr(b, column)[row]) for _, column, text, _ in _REDIS_FIELDS]
    return _ONE_ENTRY % tuple(x for v in values for x in (len(v), v))


def _repeated(name: bytes, column: list, text: Callable[[object], bytes]) -> Iterable[bytes]:
    """Field `name` with each value of a column whose values repeat (nodes, tasks, exits, stamps of
    one Indication): each distinct value packed once."""
    packed = {value: resp_bulk(name) + resp_bulk(text(value)) for value in set(column)}
    return map(packed.__getitem__, column)


def _each(name: bytes, column: list, text: Callable[[object], bytes]) -> Iterable[bytes]:
    """Field `name` with each value of a column whose values differ row to row, packed one by one."""
    head = resp_bulk(name)
    return map(b"".join, zip(repeat(head), map(resp_bulk, map(text, column))))
