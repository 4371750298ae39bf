"""The one way a test waits for the system under test: poll a condition until it holds, and fail
naming what never happened. Nothing is timed; the timeout only bounds a hang."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def until(condition: Callable[[], bool | Awaitable[bool]], what: str, timeout: float = 30.0,
                interval: float = 0.02) -> None:
    """Await `condition()` (a plain or an async predicate) until it is true."""
    give_up = time.monotonic() + timeout
    while True:
        held = condition()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        if time.monotonic() > give_up:
            raise AssertionError(f"gave up after {timeout:g} s waiting for: {what}")
        await asyncio.sleep(interval)


def until_sync(condition: Callable[[], bool], what: str, timeout: float = 30.0, interval: float = 0.1) -> None:
    """The same, for tests that drive the system from plain threads (subprocesses, HTTP)."""
    give_up = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > give_up:
            raise AssertionError(f"gave up after {timeout:g} s waiting for: {what}")
        time.sleep(interval)
