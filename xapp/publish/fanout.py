"""Where released decisions go: every sink in turn, on the event loop."""

from __future__ import annotations

from collections.abc import Callable

from xapp.vocab import DecisionBatch

Sink = Callable[[DecisionBatch], None]


class Fanout:
    """Calls each sink with every batch of decisions, in the order given."""

    def __init__(self, *sinks: Sink) -> None:
        self._sinks = sinks

    def __call__(self, decisions: DecisionBatch) -> None:
        for sink in self._sinks:
            sink(decisions)
