"""Where released decisions go: every sink in turn, on the event loop."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from xapp.publish.codec import WireGroup, wire_groups
from xapp.vocab import DecisionBatch

Sink = Callable[[DecisionBatch], None]
GroupSink = Callable[[Sequence[WireGroup]], None]


class Fanout:
    """Calls each sink with every batch of decisions, in the order given."""

    def __init__(self, *sinks: Sink) -> None:
        self._sinks = sinks

    def __call__(self, decisions: DecisionBatch) -> None:
        for sink in self._sinks:
            sink(decisions)


def serialised_once(*sinks: GroupSink) -> Sink:
    """A sink for the batch wire form: each batch is serialised once, per (task, node), and the same
    groups go to every group sink (ZMQ and Redis)."""

    def deliver(decisions: DecisionBatch) -> None:
        groups = wire_groups(decisions)
        for sink in sinks:
            sink(groups)

    return deliver
