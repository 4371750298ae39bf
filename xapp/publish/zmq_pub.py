"""Decisions on ZMQ PUB, topic `<task>/<node>`: payload the protobuf `Decision` (`publish`), or with
publish.wire: batch a three-part message, topic, "DecisionBatch" and the protobuf `DecisionBatch` of
that task and node (`publish_groups`).

PUB never blocks the engine: a send that would block (all subscribers at their high-water mark) is
dropped and counted, which is ZMQ's PUB semantics made visible.

With a CURVE key pair the feed is encrypted; subscribers must know the server's public key, and with
an authorized-keys directory only subscribers whose public key is in it are let in (ZAP)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from xapp.ops.metrics import Metrics
from xapp.publish.codec import BATCH_PART, WireGroup, encoded
from xapp.vocab import Decision, DecisionBatch, ZmqCurve


_MORE, _LAST = int(zmq.NOBLOCK | zmq.SNDMORE), int(zmq.NOBLOCK)  # flags as plain ints: no enum arithmetic per send


class ZmqPublisher:
    def __init__(
        self,
        endpoint: str,
        metrics: Metrics,
        context: zmq.Context | None = None,
        hwm: int = 10000,
        curve: ZmqCurve | None = None,
    ) -> None:
        self._metrics = metrics
        context = context or zmq.Context.instance()
        self._socket = context.socket(zmq.PUB)
        self._socket.setsockopt(zmq.SNDHWM, hwm)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._auth: ThreadAuthenticator | None = None
        try:
            if curve is not None:
                self._auth = _curve_server(self._socket, context, curve)
            self._socket.bind(endpoint)
        except (zmq.ZMQError, OSError, ValueError) as exc:
            self.close()
            raise PublishError(f"zmq: cannot serve on {endpoint} ({exc})") from exc
        self.endpoint: str = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def publish(self, decisions: DecisionBatch | Iterable[Decision]) -> None:
        sent = dropped = 0
        send = self._socket.send
        for topic, payload in encoded(decisions):
            try:
                send(topic, _MORE)
                send(payload, _LAST)
                sent += 1
            except zmq.Again:
                dropped += 1
        self._count(sent, dropped)

    def publish_groups(self, groups: Sequence[WireGroup]) -> None:
        """One message per group (the batch wire form); counts are in decisions, as with `publish`."""
        sent = dropped = 0
        send = self._socket.send
        for group in groups:
            try:
                send(group.topic, _MORE)
                send(BATCH_PART, _MORE)
                send(group.payload, _LAST)
                sent += group.count
            except zmq.Again:
                dropped += group.count
        self._count(sent, dropped)

    def _count(self, sent: int, dropped: int) -> None:
        if sent:
            self._metrics.child(self._metrics.published, "zmq").inc(sent)
        if dropped:
            self._metrics.publish_dropped.labels("zmq", "hwm").inc(dropped)

    def close(self) -> None:
        self._socket.close()
        if self._auth is not None:
            self._auth.stop()
            self._auth = None


class PublishError(Exception):
    """A sink cannot be set up (bad endpoint, port in use, ...)."""


def _curve_server(socket: zmq.Socket, context: zmq.Context, curve: ZmqCurve) -> ThreadAuthenticator | None:
    """Make `socket` a CURVE server with the key pair in `curve.secret_key`; with authorized keys,
    start a ZAP authenticator that admits only those clients."""
    public, secret = zmq.auth.load_certificate(curve.secret_key)
    if secret is None:
        raise ValueError(f"{curve.secret_key} holds no secret key")
    auth = None
    if curve.authorized_keys is not None:
        auth = ThreadAuthenticator(context)
        auth.start()
        auth.configure_curve(domain="*", location=str(curve.authorized_keys))
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_server = True
    return auth
