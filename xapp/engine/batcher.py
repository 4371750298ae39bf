"""Bounded, deadline-aware micro-batcher between the E2 subscribers and the engine.

Frames arrive one at a time on the event loop (`submit`); the engine pulls batches (`next_batch`).
A batch is released when it is full or when its oldest frame has waited `max_wait_ms`. Nothing is
dropped silently: a frame pushed out by a full queue, found past its deadline or dropped from a
standing queue (below) is counted in `frames_shed{task, reason}`.

Batches are taken oldest first. When frames have been left behind at every batch formation for as
long as a frame may wait (its deadline), the engine is not keeping up: a burst that it can serve in
time clears sooner, however many batches it takes. First in, first out would then serve every frame
as late as its deadline allows, so from then on each batch takes the newest `max_batch` frames and sheds
the older rest (reason `overload`: frames it would mostly have shed at their deadline anyway), until a
formation leaves nothing behind. Served frames then wait about one batch time, not a deadline.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

from xapp.ops.metrics import Metrics
from xapp.vocab import Request


@dataclass(frozen=True)
class BatchLimits:
    max_batch: int = 32
    max_wait_ms: float = 5.0
    queue_limit: int = 512

    def __post_init__(self) -> None:
        if self.max_batch < 1 or self.queue_limit < 1 or self.max_wait_ms < 0:
            raise ValueError(f"invalid batching limits: {self}")


class BatcherClosed(Exception):
    """`next_batch` was called on a closed batcher with nothing left to drain."""


SHED_OVERFLOW = "queue_full"
SHED_DEADLINE = "deadline"
SHED_CLOSED = "closed"  # arrived during shutdown
SHED_OVERLOAD = "overload"  # older than the newest max_batch frames of a standing queue


class Batcher:
    """Single event-loop micro-batcher: `submit` and `next_batch` must run on the same loop."""

    def __init__(self, limits: BatchLimits, metrics: Metrics, clock: Callable[[], float] = time.monotonic) -> None:
        self._limits = limits
        self._metrics = metrics
        self._clock = clock
        self._queue: deque[Request] = deque()
        self._wakeup = asyncio.Event()
        self._closed = False
        self._service_s = 0.0  # smoothed engine time per batch, fed back by the serving loop
        self._behind_since: float | None = None  # since when every batch formation has left frames queued
        # At most the earliest deadline in the queue (frames leave without raising it), so that the
        # check for expired frames scans the queue only when one may be due.
        self._earliest_deadline = math.inf
        metrics.queue_depth.set_function(self.__len__)  # read when scraped, not set per frame

    @property
    def limits(self) -> BatchLimits:
        return self._limits

    def __len__(self) -> int:
        return len(self._queue)

    def submit(self, request: Request) -> None:
        if self._closed:
            self._shed(request, SHED_CLOSED)
            return
        self._queue.append(request)
        if request.deadline < self._earliest_deadline:
            self._earliest_deadline = request.deadline
        if len(self._queue) > self._limits.queue_limit:
            self._trim()
        self._wakeup.set()

    def reconfigure(self, limits: BatchLimits) -> None:
        """New limits apply from the next batch on; a smaller queue sheds its oldest frames now."""
        self._limits = limits
        self._trim()
        self._wakeup.set()

    def observe_service_time(self, seconds: float) -> None:
        """How long the engine took for the last batch. Frames that would pass their deadline before
        a batch formed now could finish are shed at formation instead of being served late; the
        newest frame is always kept, so batches keep running and the estimate keeps adapting."""
        self._service_s = seconds if self._service_s == 0.0 else 0.7 * self._service_s + 0.3 * seconds

    def close(self) -> None:
        """Stop accepting frames; `next_batch` drains what is queued, then raises BatcherClosed."""
        self._closed = True
        self._wakeup.set()

    async def next_batch(self) -> list[Request]:
        while True:
            self._shed_expired()
            limits = self._limits
            if self._queue:
                now = self._clock()
                oldest = self._queue[0]
                flush_at = min(oldest.t_arrival + limits.max_wait_ms / 1000.0, oldest.deadline)
                if len(self._queue) >= limits.max_batch or now >= flush_at or self._closed:
                    return self._take(limits.max_batch)
                timeout = flush_at - now
            elif self._closed:
                raise BatcherClosed("batcher closed")
            else:
                timeout = None
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    def _take(self, n: int) -> list[Request]:
        surplus = len(self._queue) - n
        if surplus <= 0:
            self._behind_since = None
        else:
            now = self._clock()
            if self._behind_since is None:
                self._behind_since = now
            oldest = self._queue[0]
            standing = now - self._behind_since >= oldest.deadline - oldest.t_arrival
            if standing and not self._closed:  # a closing batcher drains everything
                for _ in range(surplus):
                    self._shed(self._queue.popleft(), SHED_OVERLOAD)
        batch = [self._queue.popleft() for _ in range(min(n, len(self._queue)))]
        self._metrics.batch_size.observe(len(batch))
        return batch

    def _trim(self) -> None:
        # Oldest first: under overload the freshest telemetry is the most useful to a control loop.
        while len(self._queue) > self._limits.queue_limit:
            self._shed(self._queue.popleft(), SHED_OVERFLOW)

    def _shed_expired(self) -> None:
        if not self._queue:
            return
        now = self._clock()
        finish = now + self._service_s
        if self._earliest_deadline > finish:
            return
        newest = self._queue[-1]
        kept = deque()
        for r in self._queue:
            if r.deadline > finish or (r is newest and r.deadline > now):
                kept.append(r)
            else:
                self._shed(r, SHED_DEADLINE)
        self._queue = kept
        self._earliest_deadline = min((r.deadline for r in kept), default=math.inf)

    def _shed(self, request: Request, reason: str) -> None:
        self._metrics.child(self._metrics.frames_shed, request.task, reason).inc()
