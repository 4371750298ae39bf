"""Scale-out by sharding, with real processes: two `xapp run` replicas (shard 0/2 and 1/2) over six
simulated E2 nodes decide every node, each node by exactly one replica, each frame exactly once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import defaultdict

import pytest
from conftest import ROOT, TINY_TASKS, write_descriptor
from polling import until

from xapp.config.shard import shard_of
from xapp.e2.sim import FramePool, SimulatedNode
from xapp.ops.redis_server import free_port
from xapp.publish.listen import DecisionListener

pytestmark = pytest.mark.e2e  # the slow end-to-end tier: real processes, sockets, the whole xApp

NODES = 6
SHARDS = 2


def streaming_nodes(pools) -> list[SimulatedNode]:
    """Six nodes, tasks alternating, each streaming its own frame."""
    nodes = []
    for i in range(NODES):
        pool = pools[TINY_TASKS[i % len(TINY_TASKS)]]
        one = FramePool.from_arrays(pool.task, pool.frames[i : i + 1], pool.labels[i : i + 1], [28.0])
        nodes.append(SimulatedNode(f"e2node-{i}", {pool.task: one}, rate_hz=20.0))
    return nodes


def test_two_replicas_split_six_nodes_and_decide_each_frame_once(tiny_model, redis_url, tmp_path):
    model_dir, pools = tiny_model
    decided: dict[int, list] = defaultdict(list)  # replica -> [(node, task, seq)]

    async def scenario() -> None:
        nodes = streaming_nodes(pools)
        for node in nodes:
            await node.start()
        endpoints = [f"tcp://127.0.0.1:{free_port()}" for _ in range(SHARDS)]
        replicas = []
        try:
            for index, zmq_endpoint in enumerate(endpoints):
                path = write_descriptor(model_dir, tmp_path / f"replica{index}" / "descriptors" / "xapp.yaml",
                                        [n.endpoint for n in nodes], zmq_endpoint, redis_url, free_port())
                replicas.append(subprocess.Popen(
                    [sys.executable, "-m", "xapp", "run", "--descriptor", str(path), "--threads", "1",
                     "--shard-index", str(index), "--shard-count", str(SHARDS)],
                    cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
            listeners = [DecisionListener(e) for e in endpoints]

            async def collect(index: int) -> None:
                while True:
                    _, d = await listeners[index].recv()
                    decided[index].append((d.node_id, d.task, d.sequence_number))

            collectors = [asyncio.create_task(collect(i)) for i in range(SHARDS)]
            def every_node_decided() -> bool:
                assert all(p.poll() is None for p in replicas), "a replica exited early"
                return {n for r in decided.values() for n, _, _ in r} == {n.node_id for n in nodes}

            await until(every_node_decided, "a decision on every node from the replicas", timeout=90)
            await asyncio.sleep(2.0)  # let every node stream a while longer
            for c in collectors:
                c.cancel()
            for listener in listeners:
                listener.close()
        finally:
            for p in replicas:
                p.terminate()
            for p in replicas:
                _, err = p.communicate(timeout=30)
                assert p.returncode == 0, err.decode()[-2000:]
            for node in nodes:
                await node.stop()

    asyncio.run(scenario())
    for index, rows in decided.items():
        served = {node for node, _, _ in rows}
        assert served == {f"e2node-{i}" for i in range(NODES) if shard_of(f"e2node-{i}", SHARDS) == index}
    all_rows = [row for rows in decided.values() for row in rows]
    assert len(all_rows) == len(set(all_rows)), "a frame was decided twice"
    assert {node for node, _, _ in all_rows} == {f"e2node-{i}" for i in range(NODES)}
