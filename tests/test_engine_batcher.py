import asyncio
import time

import numpy as np
import pytest

from xapp.engine.batcher import Batcher, BatcherClosed, BatchLimits
from xapp.ops.metrics import Metrics
from xapp.vocab import Request


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def request(seq: int, t_arrival: float, deadline_ms: float = 100.0, task: str = "modulation") -> Request:
    frame = np.zeros((1, 1024), np.complex64)
    return Request("n0", task, frame, seq, "c0", 0, t_arrival, t_arrival + deadline_ms / 1000)


def shed(metrics: Metrics, task: str, reason: str) -> float:
    return metrics.registry.get_sample_value("xapp_frames_shed_total", {"task": task, "reason": reason}) or 0.0


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


def test_full_batch_is_released_without_waiting():
    async def scenario():
        clock = Clock()
        b = Batcher(BatchLimits(max_batch=4, max_wait_ms=60_000), Metrics(), clock)
        for i in range(5):
            b.submit(request(i, clock.now))
        first = await b.next_batch()
        assert [r.seq for r in first] == [0, 1, 2, 3]
        assert len(b) == 1

    run(scenario())


def test_partial_batch_is_released_after_max_wait():
    async def scenario():
        b = Batcher(BatchLimits(max_batch=32, max_wait_ms=1), Metrics())
        waiter = asyncio.ensure_future(b.next_batch())
        await asyncio.sleep(0)
        b.submit(request(0, time.monotonic()))
        b.submit(request(1, time.monotonic()))
        assert [r.seq for r in await waiter] == [0, 1]

    run(scenario())


def test_overflow_sheds_oldest_and_counts():
    async def scenario():
        clock, metrics = Clock(), Metrics()
        b = Batcher(BatchLimits(max_batch=8, max_wait_ms=0, queue_limit=3), metrics, clock)
        for i in range(5):
            b.submit(request(i, clock.now))
        assert [r.seq for r in await b.next_batch()] == [2, 3, 4]
        assert shed(metrics, "modulation", "queue_full") == 2

    run(scenario())


def test_expired_frames_are_shed_never_served():
    async def scenario():
        clock, metrics = Clock(), Metrics()
        b = Batcher(BatchLimits(max_batch=8, max_wait_ms=0), metrics, clock)
        b.submit(request(0, clock.now, deadline_ms=10, task="beam"))
        b.submit(request(1, clock.now, deadline_ms=10, task="beam"))
        b.submit(request(2, clock.now, deadline_ms=500))
        clock.now += 0.05
        assert [r.seq for r in await b.next_batch()] == [2]
        assert shed(metrics, "beam", "deadline") == 2
        assert metrics.registry.get_sample_value("xapp_batch_queue_depth") == 0

    run(scenario())


def test_a_short_deadline_behind_long_ones_is_still_shed_after_batches_leave():
    async def scenario():
        clock, metrics = Clock(), Metrics()
        b = Batcher(BatchLimits(max_batch=2, max_wait_ms=0), metrics, clock)
        for i in range(3):
            b.submit(request(i, clock.now, deadline_ms=20))
        assert [r.seq for r in await b.next_batch()] == [0, 1]
        assert metrics.registry.get_sample_value("xapp_batch_queue_depth") == 1
        b.submit(request(3, clock.now, deadline_ms=500))
        b.submit(request(4, clock.now, deadline_ms=10, task="beam"))
        b.submit(request(5, clock.now, deadline_ms=500))
        assert metrics.registry.get_sample_value("xapp_batch_queue_depth") == 4
        clock.now += 0.015
        assert [r.seq for r in await b.next_batch()] == [2, 3]
        assert shed(metrics, "beam", "deadline") == 1
        clock.now += 0.1  # frame 2's deadline passed long ago; nothing left is due
        assert [r.seq for r in await b.next_batch()] == [5]
        assert shed(metrics, "modulation", "deadline") == 0

    run(scenario())


def test_reconfigure_to_smaller_queue_sheds_and_new_batch_size_applies():
    async def scenario():
        clock, metrics = Clock(), Metrics()
        b = Batcher(BatchLimits(max_batch=8, max_wait_ms=0, queue_limit=10), metrics, clock)
        for i in range(6):
            b.submit(request(i, clock.now))
        b.reconfigure(BatchLimits(max_batch=2, max_wait_ms=0, queue_limit=4))
        assert shed(metrics, "modulation", "queue_full") == 2
        assert [r.seq for r in await b.next_batch()] == [2, 3]

    run(scenario())


def test_close_drains_then_raises():
    async def scenario():
        clock, metrics = Clock(), Metrics()
        b = Batcher(BatchLimits(max_batch=8, max_wait_ms=60_000), metrics, clock)
        b.submit(request(0, clock.now))
        b.close()
        assert [r.seq for r in await b.next_batch()] == [0]
        with pytest.raises(BatcherClosed):
            await b.next_batch()
        b.submit(request(1, clock.now))
        assert shed(metrics, "modulation", "closed") == 1

    run(scenario())


def test_invalid_limits_are_refused():
    with pytest.raises(ValueError):
        BatchLimits(max_batch=0)



def test_frames_that_would_finish_past_their_deadline_are_shed_but_the_newest_is_served():
    async def scenario():
        clock, metrics = Clock(), Metrics()
        b = Batcher(BatchLimits(max_batch=8, max_wait_ms=0), metrics, clock)
        b.observe_service_time(0.030)  # a batch takes 30 ms
        b.submit(request(0, clock.now, deadline_ms=20))  # would be served 10 ms late
        b.submit(request(1, clock.now, deadline_ms=50))
        assert [r.seq for r in await b.next_batch()] == [1]
        assert shed(metrics, "modulation", "deadline") == 1
        # an estimate longer than every deadline never starves the engine: the newest frame runs
        b.observe_service_time(10.0)
        b.observe_service_time(10.0)
        b.submit(request(2, clock.now, deadline_ms=50))
        b.submit(request(3, clock.now, deadline_ms=50))
        assert [r.seq for r in await b.next_batch()] == [3]
        assert shed(metrics, "modulation", "deadline") == 2

    run(scenario())


def test_a_burst_served_within_its_deadline_is_served_in_full_oldest_first():
    """However many batches a burst takes (a fast engine), frames left behind for less than a deadline
    are not overload."""
    async def scenario():
        clock, metrics = Clock(), Metrics()
        b = Batcher(BatchLimits(max_batch=4, max_wait_ms=0), metrics, clock)
        for i in range(40):
            b.submit(request(i, clock.now, deadline_ms=100))
        served = []
        for _ in range(10):
            served += [r.seq for r in await b.next_batch()]
            clock.now += 0.009  # ten batches in 90 ms
        assert served == list(range(40))
        assert shed(metrics, "modulation", "overload") == 0

    run(scenario())


def test_a_standing_queue_is_served_newest_first_and_its_older_frames_shed_as_overload():
    """Frames left behind at every formation for a deadline's span: the engine is not keeping up, so
    batches take the newest frames instead of serving each as late as its deadline allows, until a
    formation leaves nothing behind; a closing batcher still drains everything, oldest first."""
    async def scenario():
        clock, metrics = Clock(), Metrics()
        b = Batcher(BatchLimits(max_batch=4, max_wait_ms=0), metrics, clock)
        seq = iter(range(1000))

        async def batch_after(arrivals: int) -> list[int]:
            for _ in range(arrivals):
                b.submit(request(next(seq), clock.now, deadline_ms=1000))
            taken = [r.seq for r in await b.next_batch()]
            clock.now += 0.4  # a batch takes 400 ms: 2.5 batches per deadline
            return taken

        assert await batch_after(6) == [0, 1, 2, 3]  # 4, 5 left behind, at t = 0
        assert await batch_after(5) == [4, 5, 6, 7]  # t = 0.4
        assert await batch_after(5) == [8, 9, 10, 11]  # t = 0.8: 12-15 left behind
        assert shed(metrics, "modulation", "overload") == 0
        assert await batch_after(5) == [17, 18, 19, 20]  # t = 1.2, behind for a deadline: 12-16 shed
        assert shed(metrics, "modulation", "overload") == 5
        assert await batch_after(2) == [21, 22]  # nothing left behind: back to oldest first
        assert await batch_after(6) == [23, 24, 25, 26]  # 27, 28 left behind at t = 2.0
        for _ in range(9):
            b.submit(request(next(seq), clock.now, deadline_ms=1000))  # 29-37 at t = 2.4
        clock.now += 0.6001  # t = 3.0: 27 and 28 expire; the queue has stood for a deadline
        b.close()
        drained = [await b.next_batch() for _ in range(3)]
        assert [r.seq for batch in drained for r in batch] == list(range(29, 38))
        assert shed(metrics, "modulation", "overload") == 5 and shed(metrics, "modulation", "deadline") == 2

    run(scenario())
