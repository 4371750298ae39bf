"""Decisions on ZMQ PUB, topic `<task>/<node>`, payload the protobuf `Decision`.

PUB never blocks the engine: a send that would block (all subscribers at their high-water mark) is
dropped and counted, which is ZMQ's PUB semantics made visible."""

from __future__ import annotations

from collections.abc import Sequence

import zmq

from xapp.engine.decision import Decision
from xapp.ops.metrics import Metrics
from xapp.publish.codec import encode, topic


class ZmqPublisher:
    def __init__(self, endpoint: str, metrics: Metrics, context: zmq.Context | None = None, hwm: int = 10000) -> None:
        self._metrics = metrics
        self._socket = (context or zmq.Context.instance()).socket(zmq.PUB)
        self._socket.setsockopt(zmq.SNDHWM, hwm)
        self._socket.setsockopt(zmq.LINGER, 0)
        try:
            self._socket.bind(endpoint)
        except zmq.ZMQError as exc:
            self._socket.close()
            raise PublishError(f"zmq: cannot bind {endpoint} ({exc})") from exc
        self.endpoint: str = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def publish(self, decisions: Sequence[Decision]) -> None:
        for d in decisions:
            try:
                self._socket.send_multipart([topic(d).encode(), encode(d)], flags=zmq.NOBLOCK)
            except zmq.Again:
                self._metrics.publish_dropped.labels("zmq", "hwm").inc()
            else:
                self._metrics.published.labels("zmq").inc()

    def close(self) -> None:
        self._socket.close()


class PublishError(Exception):
    """A sink cannot be set up (bad endpoint, port in use, ...)."""
