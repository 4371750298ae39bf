"""E2SM-IQ Indications carrying several frames (a reporting period's worth of one task): decoded in
one pass into one Request per frame, validated as a whole, and streamed by the simulated nodes; the
single-frame form keeps working beside it."""

from __future__ import annotations

import asyncio
import json
import random
import time

import numpy as np
import pytest
from prometheus_client import Counter

from xapp.e2 import e2sm_iq
from xapp.e2.client import E2Subscriber
from xapp.e2.frames import FrameRejected, decode_indication, encode_indication
from xapp.e2.gen import e2sm_iq_pb2 as iq_pb2
from xapp.e2.sequence import SequenceGuard
from xapp.e2.sim import SimError, SimulatedNode, build_pools
from xapp.e2.types import AppIdentity, Backoff, FrameLimits
from xapp.ops.metrics import Metrics

from polling import until

pytestmark = pytest.mark.timeout(60)

SHAPES = {"modulation": (1, 1024), "beam": (16, 64)}
LIMITS = FrameLimits(max_frame_bytes=16 * 1024, tasks=SHAPES, deadline_ms=100, max_frames_per_indication=8)
APP = AppIdentity("test-xapp", "test-xapp-0")


@pytest.fixture(scope="module")
def pools():
    return build_pools(list(SHAPES), 8, seed=5)


def indication(pool, sent: int, seq: int = 100, interval_ns: int = 1_000_000, **header_fields):
    """An Indication of the pool's first `sent` frames (0: the single-frame form, one frame); the
    header says so unless `header_fields` override it."""
    a, s = pool.shape
    header = iq_pb2.IndicationHeader(node_id="e2node-0", cell_id="cell7", sequence_number=seq, timestamp_ns=time.time_ns(),
                                     sample_rate_hz=1e6, center_frequency_hz=3.5e9, antennas=a, samples=s, task=pool.task,
                                     frames=sent, frame_interval_ns=interval_ns if sent else 0)
    for name, value in header_fields.items():
        setattr(header, name, value)
    payload = pool.payload(0, sent) if sent else pool.payloads[0]
    return header, encode_indication(header, payload).indication


def test_one_indication_of_several_frames_gives_one_request_per_frame(pools):
    pool = pools["beam"]
    header, ind = indication(pool, 5)
    requests = decode_indication(ind, "e2node-0", LIMITS, 12.5)
    assert [r.seq for r in requests] == [100, 101, 102, 103, 104]
    assert [r.t_node_ns - header.timestamp_ns for r in requests] == [i * 1_000_000 for i in range(5)]
    for i, r in enumerate(requests):
        assert np.array_equal(r.frame, pool.frames[i]) and r.frame.shape == (16, 64)
        assert (r.task, r.node_id, r.cell_id, r.label) == ("beam", "e2node-0", "cell7", pool.labels[i])
        assert r.t_arrival == 12.5 and r.deadline == pytest.approx(12.6)


@pytest.mark.parametrize("sent", [0, 1])
def test_the_single_frame_form_still_decodes(pools, sent):
    pool = pools["modulation"]
    _, ind = indication(pool, sent)
    (request,) = decode_indication(ind, "e2node-0", LIMITS, 1.0)
    assert np.array_equal(request.frame, pool.frames[0]) and request.seq == 100 and request.label == pool.labels[0]


def test_a_bad_multi_frame_indication_is_rejected_whole_and_counts_its_frames(pools):
    pool = pools["beam"]
    _, short = indication(pool, 4, frames=5)  # 4 frames of samples, the header claims 5
    with pytest.raises(FrameRejected, match="length") as info:
        decode_indication(short, "e2node-0", LIMITS, 0.0)
    assert info.value.frames == 5
    _, many = indication(pool, 9)
    with pytest.raises(FrameRejected, match="bad_header: 9 frames in one Indication > 8"):
        decode_indication(many, "e2node-0", LIMITS, 0.0)
    _, huge = indication(pool, 2, frames=1)  # two frames' bytes under a one-frame header: over its size
    with pytest.raises(FrameRejected, match="oversize") as info:
        decode_indication(huge, "e2node-0", LIMITS, 0.0)
    assert info.value.frames == 1
    _, lying = indication(pool, 0, frames=1 << 20)  # a header claiming absurdly many frames is not believed
    with pytest.raises(FrameRejected, match="bad_header") as info:
        decode_indication(lying, "e2node-0", LIMITS, 0.0)
    assert info.value.frames == 1
    nan = pool.frames[:3].copy()
    nan[2, 0, 5] = complex(np.nan, 0)
    header, _ = indication(pool, 3)
    bad = encode_indication(header, e2sm_iq.frames_message(nan.tobytes(), pool.labels[:3])).indication
    with pytest.raises(FrameRejected, match="non_finite"):
        decode_indication(bad, "e2node-0", LIMITS, 0.0)


def test_every_frame_of_a_multi_frame_indication_is_guarded_against_replay(pools):
    guard = SequenceGuard(64, Counter("gaps", "gaps", registry=None))
    _, first = indication(pools["beam"], 4, seq=10)  # 10..13
    assert len(decode_indication(first, "e2node-0", LIMITS, 0.0, guard)) == 4
    _, overlapping = indication(pools["beam"], 4, seq=13)  # 13 was in the first
    with pytest.raises(FrameRejected, match="replay: sequence number 13 already received"):
        decode_indication(overlapping, "e2node-0", LIMITS, 0.0, guard)


def test_a_node_streams_multi_frame_indications_and_the_subscriber_takes_every_frame(pools):
    async def scenario():
        metrics = Metrics()
        node = SimulatedNode("e2node-0", pools, rate_hz=50.0, frames_per_indication=4)
        await node.start()
        got = []
        sub = E2Subscriber(node.endpoint, APP, got.append, metrics, LIMITS,
                           Backoff(initial_ms=20, max_ms=200, jitter=0.2, rng=random.Random(0)))
        task = asyncio.create_task(sub.run())
        try:
            await until(lambda: len(got) >= 24, "24 frames in 6 Indications")
        finally:
            await sub.stop()
            await task
            await node.stop()
        seqs = [r.seq for r in got]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # consecutive across Indications
        for i in range(0, 24, 4):
            four = got[i:i + 4]
            assert len({r.task for r in four}) == 1  # one task per Indication
            assert all(b.t_node_ns > a.t_node_ns for a, b in zip(four, four[1:]))  # captured over the period
            pool = pools[four[0].task]
            for r in four:
                j = next(k for k, f in enumerate(pool.frames) if np.array_equal(r.frame, f))
                assert r.label == pool.labels[j]
        accepted = sum(metrics.total("xapp_frames_in_total", task=t) for t in SHAPES)
        assert accepted == len(got) and node.frames_sent % 4 == 0

    asyncio.run(scenario())


def test_frames_per_indication_below_one_is_refused(pools):
    with pytest.raises(SimError, match="frames_per_indication must be >= 1, got 0"):
        SimulatedNode("e2node-0", pools, frames_per_indication=0)


@pytest.mark.e2e
def test_ingest_bench_offers_single_and_multi_frame_indications_in_turn(tmp_path):
    from xapp.cli import main

    out = tmp_path / "ingest.json"
    assert main(["bench", "--ingest", "200", "--seconds", "1", "--frames-per-indication", "1,4", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert [(r["offered_frames_per_s"], r["frames_per_indication"]) for r in result["levels"]] == [(200.0, 1), (200.0, 4)]
    for row in result["levels"]:
        assert row["frames_in_per_s"] > 0 and row["decisions_per_s"] > 0 and row["shed"] == 0, row
        assert row["sent_frames_per_s"] > 0 and row["published_zmq_per_s"] > 0 and row["mean_batch"] >= 1, row
        assert row["thread_cpu_percent"]["MainThread"] > 0 and row["thread_cpu_percent"]["engine_0"] > 0, row
        assert row["load_cpu_percent"] > 0, row
    assert set(result["ceiling_by_frames_per_indication"]) == {"1", "4"} and result["trunk"] == "identity"
