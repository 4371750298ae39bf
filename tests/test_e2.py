"""E2 over real gRPC: simulated nodes on free ports, the subscriber client, fault injection, control,
and the generated code's drift from protos/."""

from __future__ import annotations

import asyncio
import random
import signal
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from polling import until

from xapp.e2 import codegen
from xapp.e2.client import E2ControlError, E2Subscriber
from xapp.e2.gen import e2sm_iq_pb2 as iq_pb2
from xapp.e2.faults import MALFORMED
from xapp.e2.sim import SimulatedNode, SimulatedNodes, build_pools
from xapp.e2.types import AppIdentity, Backoff, FrameLimits
from xapp.ops.metrics import Metrics
from xapp.vocab import NodeEndpoint

pytestmark = pytest.mark.timeout(60)

SHAPES = {"modulation": (1, 1024), "beam": (16, 64)}
LIMITS = FrameLimits(max_frame_bytes=64 * 1024, tasks=SHAPES, deadline_ms=100)
APP = AppIdentity("test-xapp", "test-xapp-0")
FAST_BACKOFF = Backoff(initial_ms=20, max_ms=200, jitter=0.2, rng=random.Random(0))


@pytest.fixture(scope="module")
def pools():
    return build_pools(list(SHAPES), 8, seed=3)


class Harness:
    """One simulated node and one subscriber collecting Requests."""

    def __init__(self, pools, rate_hz: float = 200.0, limits: FrameLimits = LIMITS) -> None:
        self.metrics = Metrics()
        self.limits = limits
        self.node = SimulatedNode("e2node-0", pools, rate_hz=rate_hz)
        self.got = []
        self.subscriber = None
        self.task = None

    async def __aenter__(self) -> Harness:
        await self.node.start()
        self.subscriber = E2Subscriber(self.node.endpoint, APP, self.got.append, self.metrics, self.limits, FAST_BACKOFF)
        self.task = asyncio.create_task(self.subscriber.run())
        return self

    async def __aexit__(self, *exc) -> None:
        await self.subscriber.stop()
        await self.task
        await self.node.stop()

    def sample(self, name: str, **labels) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


def test_subscribe_streams_validated_frames_with_increasing_seq(pools):
    async def scenario():
        async with Harness(pools) as h:
            await until(lambda: len(h.got) >= 20, "20 frames")
            assert h.subscriber.up and h.sample("xapp_e2_subscriptions_up") == 1
            seqs = [r.seq for r in h.got]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
            assert {r.task for r in h.got} == set(SHAPES)
            for r in h.got:
                pool = pools[r.task]
                assert r.node_id == "e2node-0" and r.cell_id == h.node.cell_id
                assert r.frame.dtype == np.complex64 and r.frame.shape == SHAPES[r.task]
                assert any(np.array_equal(r.frame, f) for f in pool.frames)
                assert r.label in pool.labels and r.t_node_ns > 0
                assert r.deadline == pytest.approx(r.t_arrival + 0.1)
            accepted = sum(h.sample("xapp_frames_in_total", node="e2node-0", task=t) for t in SHAPES)
            assert accepted == len(h.got)
        # stop() unsubscribed: the node ended the stream and the gauge went back down
        assert h.sample("xapp_e2_subscriptions_up") == 0
        assert h.sample("xapp_e2_reconnects_total", node="e2node-0") == 0

    asyncio.run(scenario())


def test_malformed_frames_are_rejected_and_good_frames_in_the_stream_still_arrive(pools):
    async def scenario():
        async with Harness(pools) as h:
            await until(lambda: len(h.got) >= 5, "first frames")
            h.node.inject(list(MALFORMED))
            last_bad = lambda: max(seq for seq, _ in h.node.malformed_sent)  # noqa: E731
            await until(lambda: len(h.node.malformed_sent) == len(MALFORMED), "all malformed frames sent")
            await until(lambda: h.got[-1].seq > last_bad() + 2, "good frames after the malformed ones")

            for reason, count in Counter(MALFORMED.values()).items():
                assert h.sample("xapp_frames_rejected_total", node="e2node-0", reason=reason) == count, reason
            # every good frame up to the last one received arrived, the stream never broke
            good = [r.seq for r in h.got]
            bad = {seq for seq, _ in h.node.malformed_sent}
            assert sorted(set(good) | bad) == list(range(good[0], good[-1] + 1))
            assert h.sample("xapp_e2_reconnects_total", node="e2node-0") == 0

    asyncio.run(scenario())


def test_stopped_restarted_or_dropped_node_is_resubscribed_and_frames_resume(pools):
    async def scenario():
        async with Harness(pools) as h:
            port = h.node.port
            await until(lambda: len(h.got) >= 5, "first frames")
            for step, fault in enumerate(("restart", "abort", "end"), start=1):
                before = len(h.got)
                if fault == "restart":
                    await h.node.restart(downtime=0.3)
                else:
                    assert h.node.drop_streams(fault) == 1
                await until(lambda: h.sample("xapp_e2_reconnects_total", node="e2node-0") == step, f"{fault}: resub")
                await until(lambda: len(h.got) >= before + 5, f"{fault}: frames resume")
                assert h.subscriber.up and h.sample("xapp_e2_subscriptions_up") == 1
            assert h.node.port == port
            seqs = [r.seq for r in h.got]
            assert seqs == sorted(set(seqs))

    asyncio.run(scenario())


def test_new_limits_renew_the_subscription_with_the_new_task_set(pools):
    async def scenario():
        async with Harness(pools) as h:
            await until(lambda: {r.task for r in h.got} == set(SHAPES), "frames of both tasks")
            mark = len(h.got)
            h.subscriber.limits = FrameLimits(LIMITS.max_frame_bytes, {"beam": SHAPES["beam"]}, 50)
            await until(lambda: len(h.got) >= mark + 10, "frames after the renewal")
            assert {r.task for r in h.got[mark:]} == {"beam"}
            assert h.got[-1].deadline == pytest.approx(h.got[-1].t_arrival + 0.05)
            assert h.sample("xapp_e2_reconnects_total", node="e2node-0") == 0
            await until(lambda: h.node.active_streams == 1, "the old stream gone at the node")

    asyncio.run(scenario())


def test_a_task_read_in_windows_asks_for_captures_and_a_new_shape_renews_the_subscription():
    """Limits asking for 2048-sample modulation frames (two windows) get them from a node that makes
    them; new limits asking for another shape subscribe again at once, and this node refuses that."""
    captures = build_pools(["modulation"], 8, seed=4, samples={"modulation": 2048})
    assert captures["modulation"].shape == (1, 2048)

    async def scenario():
        limits = FrameLimits(LIMITS.max_frame_bytes, {"modulation": (1, 2048)}, 100)
        async with Harness(captures, limits=limits) as h:
            await until(lambda: len(h.got) >= 5, "captures")
            assert {r.frame.shape for r in h.got} == {(1, 2048)}
            assert h.sample("xapp_frames_rejected_total", node="e2node-0", reason="shape") == 0
            h.subscriber.limits = FrameLimits(LIMITS.max_frame_bytes, {"modulation": (1, 1024)}, 100)
            await until(lambda: not h.subscriber.up, "the subscription renewed with the new shape")
            await until(lambda: h.node.active_streams == 0, "the node refused the new shape")

    asyncio.run(scenario())


def test_a_dead_node_does_not_hold_up_the_others(pools):
    async def scenario():
        metrics, got = Metrics(), []
        async with SimulatedNodes(2, tasks=list(SHAPES), rate_hz=100, pool_size=4) as nodes:
            subs = [E2Subscriber(e, APP, got.append, metrics, LIMITS, FAST_BACKOFF) for e in nodes.endpoints]
            tasks = [asyncio.create_task(s.run()) for s in subs]
            await until(lambda: all(s.up for s in subs), "both subscriptions up")
            await nodes["e2node-0"].stop()
            await until(lambda: not subs[0].up, "node 0 seen down")
            count = lambda: sum(r.node_id == "e2node-1" for r in got)  # noqa: E731
            before = count()
            await until(lambda: count() >= before + 10, "node 1 keeps streaming while node 0 is down")
            assert metrics.registry.get_sample_value("xapp_e2_subscriptions_up") == 1
            for s in subs:
                await s.stop()
            await asyncio.gather(*tasks)

    asyncio.run(scenario())


def test_control_round_trip_changes_node_state(pools):
    async def scenario():
        async with Harness(pools) as h:
            switch = iq_pb2.ControlMessage(beam_switch=iq_pb2.BeamSwitch(beam_index=7))
            outcome = await h.subscriber.control(switch, cell_id=h.node.cell_id, task="beam")
            assert outcome.success and h.node.serving_beam == 7
            record = h.node.controls[-1]
            assert (record.cell_id, record.task, record.message) == (h.node.cell_id, "beam", switch)

            out_of_range = iq_pb2.ControlMessage(beam_switch=iq_pb2.BeamSwitch(beam_index=16))
            outcome = await h.subscriber.control(out_of_range)
            assert not outcome.success and "beam 16" in outcome.detail and h.node.serving_beam == 7

            notch = iq_pb2.ControlMessage(interference_mitigation=iq_pb2.InterferenceMitigation(
                kind="chirp", action=iq_pb2.MITIGATION_ACTION_NOTCH_FILTER))
            assert (await h.subscriber.control(notch, task="interference")).success
            assert h.node.mitigations == {"chirp": "MITIGATION_ACTION_NOTCH_FILTER"}

            await h.node.stop()
            with pytest.raises(E2ControlError, match="e2node-0"):
                await h.subscriber.control(switch, timeout=1.0)
            await h.node.start()

            def controls(kind, outcome):
                return h.sample("xapp_e2_controls_total", node="e2node-0", kind=kind, outcome=outcome)

            assert controls("beam_switch", "success") == 1 and controls("beam_switch", "failure") == 1
            assert controls("interference_mitigation", "success") == 1 and controls("beam_switch", "error") == 1

    asyncio.run(scenario())


def test_backoff_grows_exponentially_with_bounded_jitter():
    backoff = Backoff(initial_ms=100, max_ms=1000, jitter=0.2, rng=random.Random(1))
    for attempt, base in enumerate((0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0)):
        assert base * 0.8 <= backoff.delay(attempt) <= base * 1.2
    assert Backoff(100, 1000, 0.0).delay(50) == 1.0


def test_generated_code_matches_protos(tmp_path: Path):
    fresh = codegen.generate(tmp_path)
    committed = sorted(p.name for p in codegen.GEN_DIR.glob("*.py"))
    assert sorted(p.name for p in fresh) == committed
    for path in fresh:
        assert path.read_bytes() == (codegen.GEN_DIR / path.name).read_bytes(), (
            f"xapp/e2/gen/{path.name} is stale: run `python -m xapp.e2.codegen`"
        )


@pytest.mark.e2e  # an `xapp e2sim` process
def test_e2sim_cli_serves_and_takes_fault_commands(tmp_path: Path):
    async def scenario():
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "xapp", "e2sim", "--nodes", "1", "--base-port", "0", "--rate", "100",
            "--tasks", "modulation,beam", "--pool", "4", "--snr-min", "20", "--snr-max", "30",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        try:
            lines = []
            while not lines or not lines[-1].startswith("e2sim: ready"):
                line = await asyncio.wait_for(proc.stdout.readline(), 60)
                assert line, f"e2sim exited early: {lines}"
                lines.append(line.decode().strip())
            address = next(line.split()[-1] for line in lines if "listening on" in line)
            metrics, got = Metrics(), []
            sub = E2Subscriber(NodeEndpoint("e2node-0", address), APP, got.append, metrics, LIMITS, FAST_BACKOFF)
            task = asyncio.create_task(sub.run())
            await until(lambda: len(got) >= 5, "frames from the CLI node")
            proc.stdin.write(b"malformed e2node-0 nan,oversize\n")
            await proc.stdin.drain()
            rejected = lambda r: metrics.registry.get_sample_value(  # noqa: E731
                "xapp_frames_rejected_total", {"node": "e2node-0", "reason": r})
            await until(lambda: rejected("non_finite") == 1 and rejected("oversize") == 1, "both rejects")
            # Restart only once both are in: a restart drops whatever the node's stream still had in flight.
            proc.stdin.write(b"restart e2node-0\n")
            await proc.stdin.drain()
            await until(lambda: metrics.registry.get_sample_value(
                "xapp_e2_reconnects_total", {"node": "e2node-0"}) == 1, "resubscribed after the restart")
            await sub.stop()
            await task
            proc.send_signal(signal.SIGINT)
            out = (await asyncio.wait_for(proc.stdout.read(), 30)).decode()
            assert await proc.wait() == 0
            assert "queued nan,oversize on e2node-0" in out and "restarted e2node-0" in out
            assert "e2node-0 sent" in out and "2 malformed" in out
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    asyncio.run(scenario())


def test_stop_returns_cleanly_when_the_stream_ends_before_unsubscribe_is_answered(pools):
    """A node that ends the stream at once and answers Unsubscribe late: run() returns and closes the
    channel while stop()'s Unsubscribe is still in flight; stop() must still return, not raise."""

    async def scenario():
        h = Harness(pools)
        async with h:
            await until(lambda: h.subscriber.up, "subscription up")
            h.node.unsubscribe_delay_s = 0.5
        assert h.task.done() and h.task.exception() is None
        assert h.sample("xapp_e2_subscriptions_up") == 0

    asyncio.run(scenario())
