"""Decisions into Redis (the RIC's shared data layer): hash `decision:<node>:<task>` holds the
latest decision, stream `decisions:<task>` the history, capped with XADD MAXLEN ~.

`publish` packs each decision's fields into the Redis protocol once (`codec.redis_entries`) and
appends them to a bounded in-memory queue (with publish.wire: batch, `publish_groups` queues one stream
entry per task and node instead: node_id, task, count and the protobuf `DecisionBatch` as `batch`); a writer task drains it in pipelined batches, each XADD and
HSET a cached command head followed by those fields, so a slow or absent Redis never stalls the
engine. redis-py's asyncio packer costs several times more per command, and at thousands of
decisions a second it was the largest share of the event loop. When Redis is down the writer retries with
backoff and the queue keeps the newest decisions, counting what it has to drop.

A rediss:// URL speaks TLS, verified against `tls.ca` (and presenting `tls.cert` for mTLS); the
password is sent with AUTH."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Iterable, Sequence

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError, InvalidResponse, RedisError, ResponseError

from xapp.ops.metrics import Metrics
from xapp.publish.codec import REDIS_FIELD_COUNT, WireGroup, redis_entries, resp_bulk
from xapp.vocab import Decision, DecisionBatch, TlsFiles

log = logging.getLogger(__name__)

WRITE_BATCH = 256
TIMEOUT_S = 2.0  # connecting, and sending or reading one pipeline

# One stream entry waiting to be written: node, task, its field/value pairs in the Redis protocol, how
# many pairs, the hash fields of its latest decision (REDIS_FIELD_COUNT pairs), how many decisions it
# carries. A plain tuple: the decision form makes one per decision.
Entry = tuple[str, str, bytes, int, bytes, int]


def tls_options(tls: TlsFiles | None) -> dict[str, str]:
    """redis-py's keyword arguments for a rediss:// connection."""
    if tls is None:
        return {}
    options = {"ssl_ca_certs": str(tls.ca), "ssl_cert_reqs": "required"}
    if tls.cert is not None:
        options |= {"ssl_certfile": str(tls.cert), "ssl_keyfile": str(tls.key)}
    return options


def command_head(count: int, *args: str) -> bytes:
    """The start of a Redis-protocol command of `count` arguments: its first `args`, the rest to follow."""
    return b"*%d\r\n" % count + b"".join(resp_bulk(arg.encode()) for arg in args)


async def read_replies(reader: asyncio.StreamReader, count: int) -> None:
    """Read `count` replies to XADD and HSET (bulk strings, integers, simple strings) off `reader`;
    an error reply raises ResponseError, anything else InvalidResponse, a closed connection RedisConnectionError."""
    buffer, pos = b"", 0
    while count:
        chunk = await reader.read(1 << 16)
        if not chunk:
            raise RedisConnectionError("redis closed the connection mid-reply")
        buffer, pos = buffer[pos:] + chunk, 0
        while count:
            end = buffer.find(b"\r\n", pos)
            if end < 0:
                break
            kind = buffer[pos : pos + 1]
            if kind == b"$":
                length = int(buffer[pos + 1 : end])
                after = end + 2 + (length + 2 if length >= 0 else 0)
                if after > len(buffer):
                    break
                pos = after
            elif kind in (b":", b"+"):
                pos = end + 2
            elif kind == b"-":
                raise ResponseError(buffer[pos + 1 : end].decode(errors="replace"))
            else:
                raise InvalidResponse(f"unexpected redis reply {buffer[pos:end][:40]!r}")
            count -= 1


def hash_key(node_id: str, task: str) -> str:
    return f"decision:{node_id}:{task}"


def stream_key(task: str) -> str:
    return f"decisions:{task}"


@functools.lru_cache(maxsize=4096)
def _xadd_head(task: str, maxlen: int, pairs: int) -> bytes:
    return command_head(6 + 2 * pairs, "XADD", stream_key(task), "MAXLEN", "~", str(maxlen), "*")


_BATCH_ENTRY_NAMES = tuple(resp_bulk(name) for name in (b"node_id", b"task", b"count", b"batch"))


def batch_entry(group: WireGroup) -> Entry:
    """The stream entry of one group in the batch wire form: node_id, task, count and the DecisionBatch."""
    values = (group.node_id.encode(), group.task.encode(), b"%d" % group.count, group.payload)
    fields = b"".join(name + resp_bulk(value) for name, value in zip(_BATCH_ENTRY_NAMES, values))
    return group.node_id, group.task, fields, len(values), group.latest, group.count


@functools.lru_cache(maxsize=4096)
def _hset_head(node_id: str, task: str) -> bytes:
    return command_head(2 + 2 * REDIS_FIELD_COUNT, "HSET", hash_key(node_id, task))


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
            url, password=password, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S, **tls_options(tls)
        )
        self._url = url
        self._maxlen = stream_maxlen
        self._metrics = metrics
        self._queue: deque[Entry] = deque()  # serialised when published, written in pipelines
        self._queued = 0  # decisions in the queue
        self._limit = queue_limit  # in decisions
        self._pending = asyncio.Event()
        self._writing = False

    def publish(self, decisions: DecisionBatch | Iterable[Decision]) -> None:
        """Queue one stream entry per decision (the decision wire form)."""
        entries = [(node_id, task, fields, REDIS_FIELD_COUNT, fields, 1)
                   for node_id, task, fields in redis_entries(decisions)]
        self._enqueue(entries, len(entries))

    def publish_groups(self, groups: Sequence[WireGroup]) -> None:
        """Queue one stream entry per group (the batch wire form)."""
        self._enqueue([batch_entry(g) for g in groups], sum(g.count for g in groups))

    def _enqueue(self, entries: Iterable[Entry], decisions: int) -> None:
        self._queue.extend(entries)
        self._queued += decisions
        dropped = 0
        while self._queued > self._limit and self._queue:
            lost = self._queue.popleft()[5]
            self._queued -= lost
            dropped += lost
        if dropped:
            self._metrics.publish_dropped.labels("redis", "queue_full").inc(dropped)
        self._pending.set()

    async def run(self) -> None:
        """Write queued decisions until cancelled."""
        backoff = 0.1
        while True:
            if not self._queue:
                self._pending.clear()
                await self._pending.wait()
            batch = [self._queue.popleft() for _ in range(min(WRITE_BATCH, len(self._queue)))]
            decisions = sum(e[5] for e in batch)
            self._queued -= decisions
            self._writing = True
            try:
                await self._write(batch)
            except (RedisError, OSError) as exc:
                log.warning("redis write failed", extra={"url": self._url, "error": str(exc), "retry_s": backoff})
                self._writing = False
                self._queue.extendleft(reversed(batch))
                self._enqueue((), decisions)  # back in the queue, under the cap again
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            self._writing = False
            backoff = 0.1
            self._metrics.child(self._metrics.published, "redis").inc(decisions)

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until the queue is drained (for shutdown and tests)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while (self._queue or self._writing) and loop.time() < end:
            await asyncio.sleep(0.01)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _write(self, batch: list[Entry]) -> None:
        commands = []
        latest: dict[tuple[str, str], bytes] = {}
        for node_id, task, fields, pairs, latest_fields, _ in batch:
            commands.append(_xadd_head(task, self._maxlen, pairs))
            commands.append(fields)
            latest[(node_id, task)] = latest_fields
        # The hash holds the latest decision only: one HSET per (node, task) in this write, not per decision.
        for (node_id, task), fields in latest.items():
            commands.append(_hset_head(node_id, task))
            commands.append(fields)
        await self._pipeline(b"".join(commands), len(commands) // 2)

    async def _pipeline(self, packed: bytes, replies: int) -> None:
        """Send packed commands on one pooled connection and read every reply; any error drops the
        connection (its unread replies with it) and is raised."""
        pool = self._client.connection_pool
        connection = await pool.get_connection()
        try:
            await connection.send_packed_command(packed)
            # The replies are parsed here, in whatever chunks they arrive: redis-py's parser costs an
            # await and tens of microseconds per reply. The connection's StreamReader is redis-py's
            # own (`_reader`); nothing else reads from a connection while this holds it.
            await asyncio.wait_for(read_replies(connection._reader, replies), TIMEOUT_S)
        except BaseException:
            await connection.disconnect()
            raise
        finally:
            await pool.release(connection)
