"""The consumer side of the ZMQ decision feed, as a control loop would use it."""

from __future__ import annotations

from collections.abc import Sequence

import zmq
import zmq.asyncio

from xapp.e2.gen import decision_pb2
from xapp.publish.codec import decode


class DecisionListener:
    """SUB socket on the xApp's PUB endpoint, filtered to `tasks` (all tasks when empty)."""

    def __init__(self, endpoint: str, tasks: Sequence[str] = (), context: zmq.asyncio.Context | None = None) -> None:
        self._socket = (context or zmq.asyncio.Context.instance()).socket(zmq.SUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.connect(endpoint)
        for task in tasks or ("",):
            self._socket.setsockopt_string(zmq.SUBSCRIBE, f"{task}/" if task else "")

    async def recv(self) -> tuple[str, decision_pb2.Decision]:
        topic, payload = await self._socket.recv_multipart()
        return topic.decode(), decode(payload)

    def close(self) -> None:
        self._socket.close()
