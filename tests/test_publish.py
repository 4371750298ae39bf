import asyncio
import time

import pytest
import redis
import zmq.asyncio
from redis.exceptions import InvalidResponse, ResponseError

from xapp.ops.metrics import Metrics
from xapp.publish.codec import decode, decode_batch, decode_message, encoded, wire_groups
from xapp.publish.fanout import serialised_once
from xapp.publish.listen import DecisionListener
from xapp.publish.redis_pub import RedisPublisher, hash_key, read_replies, stream_key
from xapp.publish.zmq_pub import ZmqPublisher
from xapp.vocab import Decision, DecisionBatch


def decision(node: str, task: str, seq: int, label: str = "beam03", index: int = 3) -> Decision:
    now = time.time_ns()
    return Decision(node, task, label, index, 0.9, 3, 0.21, seq, "cell-7", now - 2_000_000, now - 1_000_000, now)


def test_zmq_topics_filter_by_task_and_carry_the_protobuf():
    async def scenario():
        ctx = zmq.asyncio.Context()
        pub = ZmqPublisher("tcp://127.0.0.1:*", Metrics())
        beam = DecisionListener(pub.endpoint, ["beam"], ctx)
        everything = DecisionListener(pub.endpoint, [], ctx)
        # PUB drops messages until the subscription reaches it (slow joiner): publish until one lands.
        got = None
        for seq in range(200):
            pub.publish([decision("n1", "modulation", seq, "QPSK", 9), decision("n1", "beam", seq)])
            try:
                got = await asyncio.wait_for(beam.recv(), 0.05)
                break
            except asyncio.TimeoutError:
                continue
        assert got is not None
        topic, msg = got
        assert topic == "beam/n1"
        assert (msg.task, msg.node_id, msg.label, msg.class_index, msg.exit_layer) == ("beam", "n1", "beam03", 3, 3)
        assert msg.t_decision_ns > msg.t_arrival_ns > msg.t_indication_ns
        for _ in range(20):  # the beam listener never sees another task
            pub.publish([decision("n1", "modulation", 999, "QPSK", 9), decision("n2", "beam", 1000)])
            topic, _ = await asyncio.wait_for(beam.recv(), 5)
            assert topic.startswith("beam/")
        topics = set()
        while len(topics) < 2:
            topics.add((await asyncio.wait_for(everything.recv(), 5))[0].split("/")[0])
        assert topics == {"beam", "modulation"}
        beam.close(), everything.close(), pub.close()
        ctx.term()

    asyncio.run(scenario())


def test_redis_latest_hash_and_capped_stream(redis_url):
    async def scenario():
        metrics = Metrics()
        pub = RedisPublisher(redis_url, stream_maxlen=50, metrics=metrics)
        writer = asyncio.create_task(pub.run())
        for seq in range(300):
            pub.publish([decision("n1", "beam", seq, f"beam{seq % 16:02d}", seq % 16)])
        pub.publish([decision("n2", "modulation", 5, "QPSK", 9)])
        await pub.flush()
        writer.cancel()
        await pub.aclose()
        return metrics

    metrics = asyncio.run(scenario())
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    latest = r.hgetall(hash_key("n1", "beam"))
    assert latest["sequence_number"] == "299" and latest["label"] == "beam11" and latest["exit_layer"] == "3"
    assert r.hgetall(hash_key("n2", "modulation"))["label"] == "QPSK"
    length = r.xlen(stream_key("beam"))
    assert 50 <= length < 300  # MAXLEN ~ trims in whole macro nodes, never below the cap
    last = r.xrevrange(stream_key("beam"), count=1)[0][1]
    assert last["sequence_number"] == "299" and last["cell_id"] == "cell-7"
    assert metrics.registry.get_sample_value("xapp_published_total", {"sink": "redis"}) == 301


def without_redis(feed) -> Metrics:
    """`feed(publisher)` into a RedisPublisher (room for 100 decisions) whose Redis is not there, its
    writer running; the metrics after 0.2 s."""
    async def scenario():
        metrics = Metrics()
        pub = RedisPublisher("redis://127.0.0.1:1/0", stream_maxlen=10, metrics=metrics, queue_limit=100)
        writer = asyncio.create_task(pub.run())
        feed(pub)
        await asyncio.sleep(0.2)
        writer.cancel()
        await pub.aclose()
        return metrics

    return asyncio.run(scenario())


def test_redis_down_never_blocks_and_counts_drops():
    def feed(pub):
        for seq in range(250):
            pub.publish([decision("n1", "beam", seq)])  # returns at once even though nothing listens

    metrics = without_redis(feed)
    dropped = metrics.registry.get_sample_value("xapp_publish_dropped_total", {"sink": "redis", "reason": "queue_full"})
    assert dropped >= 150
    assert (metrics.registry.get_sample_value("xapp_published_total", {"sink": "redis"}) or 0) == 0


def test_replies_are_read_across_any_split_and_errors_raise():
    replies = b"$15\r\n1700000000000-0\r\n:13\r\n+OK\r\n$-1\r\n$3\r\na\r\n\r\n"

    async def read(chunks, count):
        reader = asyncio.StreamReader()
        for chunk in chunks:
            reader.feed_data(chunk)
        reader.feed_eof()
        await read_replies(reader, count)
        return await reader.read()

    for cut in range(1, len(replies)):  # every place a reply may be split between two reads
        assert asyncio.run(read([replies[:cut], replies[cut:]], 5)) == b""
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        asyncio.run(read([b":1\r\n-WRONGTYPE Operation against a key\r\n"], 2))
    with pytest.raises(InvalidResponse):
        asyncio.run(read([b"*2\r\n"], 1))
    with pytest.raises(redis.exceptions.ConnectionError):
        asyncio.run(read([b"$15\r\n1700"], 1))


def test_an_error_reply_keeps_the_decisions_until_redis_takes_them(redis_url):
    """A key of the wrong type makes every XADD fail: the writer keeps the batch and retries; once
    the key is fixed every decision lands, in order."""
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    r.delete(stream_key("interference"))
    r.set(stream_key("interference"), "not a stream")

    async def scenario():
        metrics = Metrics()
        pub = RedisPublisher(redis_url, stream_maxlen=1000, metrics=metrics)
        writer = asyncio.create_task(pub.run())
        for seq in range(40):
            pub.publish([decision("n9", "interference", seq, "tone", 1)])
        await asyncio.sleep(0.3)
        assert (metrics.registry.get_sample_value("xapp_published_total", {"sink": "redis"}) or 0) == 0
        r.delete(stream_key("interference"))
        await pub.flush(10.0)
        writer.cancel()
        await pub.aclose()
        return metrics

    metrics = asyncio.run(scenario())
    entries = r.xrange(stream_key("interference"))
    assert [int(f["sequence_number"]) for _, f in entries] == list(range(40))
    assert r.hgetall(hash_key("n9", "interference"))["sequence_number"] == "39"
    assert metrics.registry.get_sample_value("xapp_published_total", {"sink": "redis"}) == 40


def test_listener_takes_queued_decisions_in_bursts_in_order():
    async def scenario():
        ctx = zmq.asyncio.Context()
        pub = ZmqPublisher("tcp://127.0.0.1:*", Metrics())
        listener = DecisionListener(pub.endpoint, ["beam"], ctx)
        for seq in range(200):  # slow joiner: until the subscription has reached the publisher
            pub.publish([decision("n1", "beam", 10**6)])
            try:
                await asyncio.wait_for(listener.recv(), 0.05)
                break
            except asyncio.TimeoutError:
                continue
        pub.publish([decision("n1", "beam", seq) for seq in range(500)])
        got, bursts = [], 0
        while len(got) < 500:
            burst = await asyncio.wait_for(listener.recv_queued(limit=300), 5)
            assert len(burst) <= 300
            got.extend(msg.sequence_number for _, msg in burst if msg.sequence_number < 10**6)  # not the joining ones
            bursts += 1
        listener.close(), pub.close()
        ctx.term()
        return got, bursts

    got, bursts = asyncio.run(scenario())
    assert got == list(range(500)) and bursts < 500


def mixed_batch(n: int = 40) -> DecisionBatch:
    """Decisions of two tasks from three nodes, interleaved, with distinct labels and confidences."""
    return DecisionBatch.of(
        Decision(f"n{i % 3}", "beam" if i % 2 else "modulation", f"label{i}", i % 7, i / n, 1 + i % 2,
                 0.03 * (1 + i % 2), i, "cell-7", 1_000 + i, 2_000 + i, 3_000 + i, "fixed")
        for i in range(n))


def test_batch_wire_carries_exactly_the_decision_wire_content():
    b = mixed_batch()
    groups = wire_groups(b)
    assert [(g.task, g.node_id) for g in groups] == list(dict.fromkeys(zip(b.task, b.node_id)))
    assert sum(g.count for g in groups) == len(b)
    from_batches = [d for g in groups for d in decode_batch(g.payload)]
    one_by_one = {(d.node_id, d.sequence_number): d for d in (decode(payload) for _, payload in encoded(b))}
    assert len(from_batches) == len(one_by_one)
    for d in from_batches:  # field for field, every decision equals its decision-form message
        assert d == one_by_one[(d.node_id, d.sequence_number)]
    for g in groups:  # rows keep their order within a group; the hash fields are the group's last decision's
        mine = [i for i in range(len(b)) if (b.task[i], b.node_id[i]) == (g.task, g.node_id)]
        assert [d.sequence_number for d in decode_batch(g.payload)] == [b.seq[i] for i in mine]
        last = mine[-1]
        assert f"$%d\r\nlabel{last}\r\n".encode() % len(f"label{last}") in g.latest
    with pytest.raises(ValueError, match="not a decision message"):
        decode_message([b"beam/n1", b"Something", b""])
    with pytest.raises(ValueError, match="1 parts"):
        decode_message([b"beam/n1"])
    assert wire_groups([]) == []


def test_batch_wire_reaches_zmq_listeners_and_redis_in_decision_units(redis_url):
    b = mixed_batch()

    async def scenario():
        metrics = Metrics()
        ctx = zmq.asyncio.Context()
        zmq_pub = ZmqPublisher("tcp://127.0.0.1:*", metrics)
        redis_pub = RedisPublisher(redis_url, stream_maxlen=1000, metrics=metrics)
        deliver = serialised_once(zmq_pub.publish_groups, redis_pub.publish_groups)
        beam = DecisionListener(zmq_pub.endpoint, ["beam"], ctx)
        writer = asyncio.create_task(redis_pub.run())
        for _ in range(200):  # slow joiner: publish until the subscription has landed
            deliver(b)
            try:
                await asyncio.wait_for(beam.recv(), 0.05)
                break
            except asyncio.TimeoutError:
                continue
        # Drain whatever the joining rounds left, then one more round, read decision by decision.
        while True:
            try:
                await asyncio.wait_for(beam.recv(), 0.2)
            except asyncio.TimeoutError:
                break
        deliver(b)
        got = [await asyncio.wait_for(beam.recv(), 5) for _ in range(b.task.count("beam"))]
        await redis_pub.flush()
        writer.cancel()
        await redis_pub.aclose()
        beam.close(), zmq_pub.close()
        ctx.term()
        return metrics, got

    metrics, got = asyncio.run(scenario())
    beam_rows = sorted((f"beam/{n}", s) for n, t, s in zip(b.node_id, b.task, b.seq) if t == "beam")
    assert sorted((topic, d.sequence_number) for topic, d in got) == beam_rows
    assert all(d.label == f"label{d.sequence_number}" and d.task == "beam" for _, d in got)
    rounds = metrics.registry.get_sample_value("xapp_published_total", {"sink": "redis"}) / len(b)
    assert rounds == int(rounds) >= 2  # counted in decisions, whole batches each time
    r = redis.Redis.from_url(redis_url)
    entries = r.xrange(stream_key("beam"))
    assert len(entries) == 3 * rounds  # one entry per node and round
    decoded = [d for _, e in entries[-3:] for d in decode_batch(e[b"batch"])]
    assert sorted(d.sequence_number for d in decoded) == [s for t, s in zip(b.task, b.seq) if t == "beam"]
    latest = r.hgetall(hash_key("n1", "beam"))
    last = max(s for n, t, s in zip(b.node_id, b.task, b.seq) if (n, t) == ("n1", "beam"))
    assert latest[b"sequence_number"] == str(last).encode() and latest[b"label"] == f"label{last}".encode()


def test_batch_wire_queue_cap_counts_decisions():
    def feed(pub):
        for _ in range(10):
            pub.publish_groups(wire_groups(mixed_batch(40)))  # 400 decisions into room for 100

    dropped = without_redis(feed).registry.get_sample_value(
        "xapp_publish_dropped_total", {"sink": "redis", "reason": "queue_full"})
    assert 300 <= dropped < 400
