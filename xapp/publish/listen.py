"""The consumer side of the ZMQ decision feed, as a control loop would use it."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.asyncio
import zmq.auth

from xapp.e2.gen import decision_pb2
from xapp.publish.codec import decode_message


@dataclass(frozen=True)
class CurveClient:
    """A CURVE subscriber: the xApp's public key and the subscriber's own key pair (Z85 bytes)."""

    server_public: bytes
    public: bytes
    secret: bytes

    @classmethod
    def from_files(cls, server_cert: str | Path, client_secret_cert: str | Path) -> CurveClient:
        """From zmq.auth certificate files: the server's public one and the client's secret one."""
        server_public, _ = zmq.auth.load_certificate(server_cert)
        public, secret = zmq.auth.load_certificate(client_secret_cert)
        if secret is None:
            raise ValueError(f"{client_secret_cert} holds no secret key")
        return cls(server_public, public, secret)


class DecisionListener:
    """SUB socket on the xApp's PUB endpoint, filtered to `tasks` (all tasks when empty). Reads both
    wire forms: a batch message's decisions come out one at a time, as from the decision form."""

    def __init__(
        self,
        endpoint: str,
        tasks: Sequence[str] = (),
        context: zmq.asyncio.Context | None = None,
        curve: CurveClient | None = None,
    ) -> None:
        self._socket = (context or zmq.asyncio.Context.instance()).socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            self._socket.curve_serverkey = curve.server_public
            self._socket.curve_publickey, self._socket.curve_secretkey = curve.public, curve.secret
        self._queued = zmq.Socket.shadow(self._socket.underlying)  # non-blocking reads without a future each
        self._socket.connect(endpoint)
        self._unread: deque[tuple[str, decision_pb2.Decision]] = deque()  # the rest of a batch message
        for task in tasks or ("",):
            self._socket.setsockopt_string(zmq.SUBSCRIBE, f"{task}/" if task else "")

    async def recv(self) -> tuple[str, decision_pb2.Decision]:
        if not self._unread:
            self._unread.extend(decode_message(await self._socket.recv_multipart()))
        return self._unread.popleft()

    async def recv_queued(self, limit: int = 4096) -> list[tuple[str, decision_pb2.Decision]]:
        """The next decision and those already queued behind it, at most `limit`: a listener that keeps
        up with thousands a second (one await per burst, not per decision)."""
        out = [await self.recv()]
        try:
            while len(out) < limit:
                if not self._unread:
                    self._unread.extend(decode_message(self._queued.recv_multipart(zmq.NOBLOCK)))
                out.append(self._unread.popleft())
        except zmq.Again:
            pass
        return out

    def close(self) -> None:
        self._socket.close()
