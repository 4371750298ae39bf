"""Orderly shutdown for long-running commands: SIGINT/SIGTERM set an event instead of raising."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


async def until_signal(main: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """Run `main(stop)` with SIGINT/SIGTERM setting `stop`, so that shutdown is orderly."""
    stop = asyncio.Event()
    with _signals_set(asyncio.get_running_loop(), stop):
        return await main(stop)


@contextmanager
def _signals_set(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> Iterator[None]:
    sigs = (signal.SIGINT, signal.SIGTERM)
    for sig in sigs:
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in sigs:
            loop.remove_signal_handler(sig)
