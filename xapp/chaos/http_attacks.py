"""Abusive HTTP clients for the ops endpoint, and a timed /alive probe to see whether it still answers."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from xapp.ops.http import ALIVE

ALIVE_REQUEST = f"GET {ALIVE} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n".encode()


async def probe_alive(port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> tuple[int, float]:
    """(HTTP status of /alive, seconds from connecting to the full answer); status 0 if no answer."""
    start = time.monotonic()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError):
        return 0, time.monotonic() - start
    try:
        writer.write(ALIVE_REQUEST)
        raw = await asyncio.wait_for(reader.read(), timeout)
    except (OSError, TimeoutError):
        return 0, time.monotonic() - start
    finally:
        writer.close()
    parts = raw.split(b" ", 2)
    return (int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0), time.monotonic() - start


async def oversized(port: int, where: str, size: int = 1 << 20, host: str = "127.0.0.1") -> int:
    """Send a request whose request line ("line") or one header ("header") is `size` bytes; return
    the HTTP status answered (0: the connection was closed without an answer)."""
    filler = b"a" * size
    if where == "line":
        request = b"GET /" + filler + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    else:
        request = f"GET {ALIVE} HTTP/1.1\r\nHost: x\r\nX-Filler: ".encode() + filler + b"\r\n\r\n"
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        raw = await asyncio.wait_for(reader.read(4096), 10.0)
    except ConnectionError:
        return 0
    finally:
        writer.close()
    parts = raw.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


async def slowloris(port: int, seconds: float, interval: float = 0.2, host: str = "127.0.0.1") -> float:
    """Dribble one header byte per `interval` without ever finishing the request; return how long
    the server kept the connection open (at most `seconds`)."""
    reader, writer = await asyncio.open_connection(host, port)
    start = time.monotonic()
    try:
        writer.write(f"GET {ALIVE} HTTP/1.1\r\nHost: x\r\nX-Slow: ".encode())
        while time.monotonic() - start < seconds:
            writer.write(b"a")
            await writer.drain()
            try:
                if await asyncio.wait_for(reader.read(1), interval) == b"":
                    break  # closed by the server
            except TimeoutError:
                continue
            break  # the server answered something: not held either
    except ConnectionError:
        pass
    finally:
        writer.close()
    return time.monotonic() - start


@contextlib.asynccontextmanager
async def idle_connections(port: int, count: int, host: str = "127.0.0.1") -> AsyncIterator[int]:
    """Hold `count` connections open that never send a byte; yields how many were opened."""
    writers = []
    try:
        for _ in range(count):
            try:
                _, writer = await asyncio.open_connection(host, port)
            except OSError:
                break
            writers.append(writer)
        yield len(writers)
    finally:
        for writer in writers:
            writer.close()
