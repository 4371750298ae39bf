"""Supervision of the per-node E2 task: whatever ends a stream (bytes that are not protobuf, a bad
or missing Acknowledgement, an exception inside the task, an abort, a clean end) leads to a counted
resubscription, never a dead task. Faults come from a real gRPC server relaying a simulated node's
stream as raw bytes (xapp.chaos.proxy)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator, Mapping

import pytest
from polling import until

from xapp.chaos.proxy import WIRE_FAULTS, FaultProxy
from xapp.e2.client import TRANSITIONS, E2Subscriber, LinkState
from xapp.e2.sim import SimulatedNode, build_pools
from xapp.e2.types import AppIdentity, Backoff, FrameLimits
from xapp.ops.metrics import Metrics

pytestmark = pytest.mark.timeout(60)

SHAPES = {"modulation": (1, 1024), "beam": (16, 64)}
APP = AppIdentity("test-xapp", "test-xapp-0")
BACKOFF = Backoff(initial_ms=20, max_ms=200, jitter=0.2, rng=random.Random(0))


@pytest.fixture(scope="module")
def pools():
    return build_pools(list(SHAPES), 8, seed=3)


class FailingOnce(Mapping):
    """Task shapes whose first lookup once armed raises: an unexpected exception inside the node's task."""

    def __init__(self, shapes: Mapping[str, tuple[int, int]]) -> None:
        self._shapes = dict(shapes)
        self.armed = self.failed = False

    def __getitem__(self, task: str) -> tuple[int, int]:
        if self.armed and not self.failed:
            self.failed = True
            raise RuntimeError("injected failure inside the subscriber")
        return self._shapes[task]

    def __iter__(self) -> Iterator[str]:
        return iter(self._shapes)

    def __len__(self) -> int:
        return len(self._shapes)


class Rig:
    """A simulated node behind a FaultProxy, and one subscriber to the proxy."""

    def __init__(self, pools, limits: FrameLimits | None = None) -> None:
        self.metrics = Metrics()
        self.node = SimulatedNode("e2node-0", pools, rate_hz=200.0)
        self.proxy: FaultProxy | None = None
        self.got = []
        self.limits = limits or FrameLimits(64 * 1024, SHAPES, 100)

    async def __aenter__(self) -> Rig:
        await self.node.start()
        self.proxy = FaultProxy("e2node-0", self.node.endpoint.address)
        await self.proxy.start()
        self.sub = E2Subscriber(self.proxy.endpoint, APP, self.got.append, self.metrics, self.limits, BACKOFF)
        self.task = asyncio.create_task(self.sub.run())
        await until(lambda: len(self.got) >= 5, "first frames")
        return self

    async def __aexit__(self, *exc) -> None:
        await self.sub.stop()
        await self.task
        await self.proxy.stop()
        await self.node.stop()

    def value(self, name: str, **labels) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0

    async def recovers_from(self, cause: str) -> None:
        """The subscription was resubscribed for `cause`, is up, and frames flow again."""
        await until(lambda: self.value("xapp_e2_resubscribes_total", node="e2node-0", cause=cause) >= 1,
                    f"a resubscribe counted as {cause}")
        seen = len(self.got)
        await until(lambda: self.sub.up and len(self.got) >= seen + 5, "frames after resubscribing")
        assert not self.task.done(), "the node's task ended"
        assert self.value("xapp_e2_node_up", node="e2node-0") == 1


@pytest.mark.parametrize("fault", ["not_protobuf", "bad_ack", "no_ack", "abort", "end"])
def test_wire_fault_leads_to_resubscription(pools, fault):
    async def scenario():
        async with Rig(pools) as rig:
            if fault in ("bad_ack", "no_ack"):
                rig.proxy.inject(fault)
                rig.proxy.inject("abort")  # end the current stream so the next Ack is the bad one
                await rig.recovers_from("rpc_error")
            else:
                rig.proxy.inject(fault)
            await rig.recovers_from(WIRE_FAULTS[fault])

    asyncio.run(scenario())


def test_exception_inside_the_task_leads_to_resubscription(pools):
    async def scenario():
        shapes = FailingOnce(SHAPES)
        async with Rig(pools) as rig:
            rig.sub.limits = FrameLimits(64 * 1024, shapes, 100)  # same tasks and shapes: applies to the next frame
            shapes.armed = True
            await rig.recovers_from("internal_error")
            assert shapes.failed

    asyncio.run(scenario())


def test_replayed_indication_is_rejected_and_served_once(pools):
    async def scenario():
        async with Rig(pools) as rig:
            rig.proxy.inject("duplicate", 3)
            await until(lambda: rig.value("xapp_frames_rejected_total", node="e2node-0", reason="replay") == 3,
                        "three replays rejected")
            seqs = [r.seq for r in rig.got]
            assert len(seqs) == len(set(seqs))
            assert rig.sub.up and rig.value("xapp_e2_resubscribes_total", node="e2node-0", cause="bad_message") == 0

    asyncio.run(scenario())


def test_down_time_is_tracked_per_node(pools):
    async def scenario():
        async with Rig(pools) as rig:
            assert rig.sub.down_for(time.monotonic()) == 0.0
            await rig.node.stop()
            await until(lambda: not rig.sub.up, "subscription down")
            await asyncio.sleep(0.2)
            assert rig.sub.down_for(time.monotonic()) >= 0.2
            await rig.node.start()
            await until(lambda: rig.sub.up, "subscription up again")

    asyncio.run(scenario())


def test_link_state_walks_the_transition_table(pools):
    """UP -> RECONNECTING when the node goes, back to UP with one counted reconnect; new limits renew
    through RENEWING/RENEWED without a reconnect; stop() ends in STOPPED, which nothing leaves. Every step
    the subscriber took is in TRANSITIONS: it raises on any other."""
    async def scenario():
        async with Rig(pools) as rig:
            assert rig.sub.state is LinkState.UP
            await rig.node.stop()
            await until(lambda: rig.sub.state is LinkState.RECONNECTING, "reconnecting after the node went")
            await rig.node.start()
            await until(lambda: rig.sub.state is LinkState.UP, "up again")
            assert rig.value("xapp_e2_reconnects_total", node="e2node-0") == 1
            rig.sub.limits = FrameLimits(1 << 20, {"beam": SHAPES["beam"]}, 100.0)
            assert rig.sub.state is LinkState.RENEWING
            await until(lambda: rig.sub.state is LinkState.UP, "up with the new limits")
            assert rig.value("xapp_e2_reconnects_total", node="e2node-0") == 1
            await rig.sub.stop()
            assert rig.sub.state is LinkState.STOPPED and not rig.sub.up
            rig.sub.limits = FrameLimits(1 << 20, dict(SHAPES), 100.0)  # no renewal once stopped
            assert rig.sub.state is LinkState.STOPPED and not TRANSITIONS[LinkState.STOPPED]

    asyncio.run(scenario())
