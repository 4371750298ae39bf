"""The serving loop: batches from the batcher go to the engine on its own worker thread (torch uses
its own intra-op pool inside it); each group of decisions the engine releases comes back to the event
loop with call_soon_threadsafe and goes straight to `deliver`, so publishing never waits for the rest
of the batch and never blocks compute."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from xapp.engine.batcher import Batcher, BatcherClosed
from xapp.engine.runner import EarlyExitEngine, TaskTable
from xapp.ops.metrics import Metrics, observe_many
from xapp.vocab import DecisionBatch

log = logging.getLogger(__name__)


class ServingLoop:
    """Pulls batches until the batcher is closed and drained. `table` is read once per batch, so a
    hot reload that swaps it never lands mid-batch; queued frames are kept across a swap."""

    def __init__(self, batcher: Batcher, engine: EarlyExitEngine, table: Callable[[], TaskTable],
                 deliver: Callable[[DecisionBatch], None], metrics: Metrics) -> None:
        self._batcher = batcher
        self._engine = engine
        self._table = table
        self._deliver = deliver
        self._metrics = metrics
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")

    async def run(self) -> None:
        loop = asyncio.get_running_loop()

        def release(decisions: DecisionBatch) -> None:
            loop.call_soon_threadsafe(self._deliver, decisions)

        try:
            while True:
                try:
                    batch = await self._batcher.next_batch()
                except BatcherClosed:
                    return
                started = time.monotonic()
                waited = started - np.fromiter((r.t_arrival for r in batch), dtype=np.float64, count=len(batch))
                observe_many(self._metrics.child(self._metrics.stage_latency, "queue"), waited)
                table = self._table()
                try:
                    report = await loop.run_in_executor(self._executor, self._engine.run, batch, table, release)
                    self._batcher.observe_service_time(report.seconds)
                except Exception:
                    log.exception("engine failed on a batch of %d frames", len(batch))
                    for r in batch:
                        self._metrics.frames_shed.labels(r.task, "engine_error").inc()
        finally:
            self._executor.shutdown(wait=True)
