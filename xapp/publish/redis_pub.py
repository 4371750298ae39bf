"""Decisions into Redis (the RIC's shared data layer): hash `decision:<node>:<task>` holds the
latest decision, stream `decisions:<task>` the history, capped with XADD MAXLEN ~.

`publish` only appends to a bounded in-memory queue; a writer task drains it in pipelined batches,
so a slow or absent Redis never stalls the engine. The batches are packed into the Redis protocol here
(`resp_command`): redis-py's asyncio packer costs several times more per command, and at thousands
of decisions a second it was the largest share of the event loop. When Redis is down the writer retries with
backoff and the queue keeps the newest decisions, counting what it has to drop.

A rediss:// URL speaks TLS, verified against `tls.ca` (and presenting `tls.cert` for mTLS); the
password is sent with AUTH."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from itertools import chain
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


def resp_command(*args: str) -> bytes:
    """One command in the Redis protocol: an array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


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
        maxlen = str(self._maxlen)
        commands = []
        latest: dict[tuple[str, str], dict[str, str]] = {}
        for node_id, task, f in batch:
            fields = chain.from_iterable(f.items())
            commands.append(resp_command("XADD", stream_key(task), "MAXLEN", "~", maxlen, "*", *fields))
            latest[(node_id, task)] = f
        # The hash holds the latest decision only: one HSET per (node, task) in this write, not per decision.
        for (node_id, task), f in latest.items():
            commands.append(resp_command("HSET", hash_key(node_id, task), *chain.from_iterable(f.items())))
        await self._pipeline(b"".join(commands), len(commands))

    async def _pipeline(self, packed: bytes, replies: int) -> None:
        """Send packed commands on one pooled connection and read every reply; any error drops the
        connection (its unread replies with it) and is raised."""
        pool = self._client.connection_pool
        connection = await pool.get_connection()
        try:
            await connection.send_packed_command(packed)
            for _ in range(replies):
                await connection.read_response()
        except BaseException:
            await connection.disconnect()
            raise
        finally:
            await pool.release(connection)
