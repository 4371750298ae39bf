"""Decisions into Redis (the RIC's shared data layer): hash `decision:<node>:<task>` holds the
latest decision, stream `decisions:<task>` the history, capped with XADD MAXLEN ~.

`publish` only appends to a bounded in-memory queue; a writer task drains it in pipelined batches,
so a slow or absent Redis never stalls the engine. When Redis is down the writer retries with
backoff and the queue keeps the newest decisions, counting what it has to drop.

A rediss:// URL speaks TLS, verified against `tls.ca` (and presenting `tls.cert` for mTLS); the
password is sent with AUTH."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from xapp.ops.metrics import Metrics
from xapp.publish.codec import redis_fields
from xapp.vocab import Decision, DecisionBatch, TlsFiles

log = logging.getLogger(__name__)

WRITE_BATCH = 256
Entry = tuple[str, str, dict[str, str]]  # node, task, fields


def tls_options(tls: TlsFiles | None) -> dict[str, str]:
    """redis-py's keyword arguments for a rediss:// connection."""
    if tls is None:
        return {}
    options = {"ssl_ca_certs": str(tls.ca), "ssl_cert_reqs": "required"}
    if tls.cert is not None:
        options |= {"ssl_certfile": str(tls.cert), "ssl_keyfile": str(tls.key)}
    return options


def hash_key(node_id: str, task: str) -> str:
    return f"decision:{node_id}:{task}"


def stream_key(task: str) -> str:
    return f"decisions:{task}"


class RedisPublisher:
    def __init__(
        self,
        url: str,
        stream_maxlen: int,
        metrics: Metrics,
        password: str | None = None,
        queue_limit: int = 10000,
        tls: TlsFiles | None = None,
    ) -> None:
        self._client = aioredis.Redis.from_url(
            url, password=password, socket_timeout=2.0, socket_connect_timeout=2.0, **tls_options(tls)
        )
        self._url = url
        self._maxlen = stream_maxlen
        self._metrics = metrics
        self._queue: deque[Entry] = deque()  # serialised when published, written in pipelines
        self._limit = queue_limit
        self._pending = asyncio.Event()
        self._writing = False

    def publish(self, decisions: DecisionBatch | Iterable[Decision]) -> None:
        self._queue.extend(redis_fields(decisions))
        while len(self._queue) > self._limit:
            self._queue.popleft()
            self._metrics.publish_dropped.labels("redis", "queue_full").inc()
        self._pending.set()

    async def run(self) -> None:
        """Write queued decisions until cancelled."""
        backoff = 0.1
        while True:
            if not self._queue:
                self._pending.clear()
                await self._pending.wait()
            batch = [self._queue.popleft() for _ in range(min(WRITE_BATCH, len(self._queue)))]
            self._writing = True
            try:
                await self._write(batch)
            except (RedisError, OSError) as exc:
                log.warning("redis write failed", extra={"url": self._url, "error": str(exc), "retry_s": backoff})
                self._writing = False
                self._queue.extendleft(reversed(batch))
                self.publish(())  # re-apply the cap
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            self._writing = False
            backoff = 0.1
            self._metrics.published.labels("redis").inc(len(batch))

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until the queue is drained (for shutdown and tests)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while (self._queue or self._writing) and loop.time() < end:
            await asyncio.sleep(0.01)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _write(self, batch: list[Entry]) -> None:
        pipe = self._client.pipeline(transaction=False)
        latest: dict[tuple[str, str], dict[str, str]] = {}
        for node_id, task, f in batch:
            pipe.xadd(stream_key(task), f, maxlen=self._maxlen, approximate=True)
            latest[(node_id, task)] = f
        # The hash holds the latest decision only: one HSET per (node, task) in this write, not per decision.
        for (node_id, task), f in latest.items():
            pipe.hset(hash_key(node_id, task), mapping=f)
        await pipe.execute()
