"""End to end with real parts: simulated E2 nodes (gRPC) -> xApp -> decisions on ZMQ and in Redis.

The model is a small seeded encoder with heads fitted on the fly to the very frames the nodes
stream (high SNR), so a wrong label can only come from the runtime: wrong head, wrong exit, rows
mixed up by batching or early release, or a frame mangled on the way."""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import redis
import yaml
from conftest import TINY_TASKS as TASKS
from conftest import single_frame_nodes, write_descriptor
from polling import until

from xapp.app import Overrides, XApp
from xapp.config import load_descriptor
from xapp.e2.sim import SimulatedNode
from xapp.ops.metrics import Metrics
from xapp.ops.redis_server import free_port
from xapp.publish.codec import decode_batch
from xapp.publish.listen import DecisionListener
from xapp.publish.redis_pub import hash_key, stream_key

pytestmark = pytest.mark.e2e  # the slow end-to-end tier: real processes, sockets, the whole xApp


class System:
    def __init__(self, app: XApp, metrics: Metrics, nodes: list[SimulatedNode], listener: DecisionListener, path: Path):
        self.app, self.metrics, self.nodes, self.listener, self.path = app, metrics, nodes, listener, path
        self.decisions: list = []  # (receive time, proto Decision)

    async def collect(self) -> None:
        while True:
            _, d = await self.listener.recv()
            self.decisions.append((time.monotonic(), d))

    def metric(self, name: str, **labels) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0

    def truth(self, d) -> str:
        """The label of the frame a decision is about: each node streams one task from a 1-frame pool."""
        node = next(n for n in self.nodes if n.node_id == d.node_id)
        return node.pools[d.task].labels[0]


@asynccontextmanager
async def running(tiny_model, redis_url, tmp_path, wire: str = "decision", nodes=None, windows=None, encoder=None):
    """The xApp serving four single-frame nodes (see conftest.single_frame_nodes), or `nodes`; `windows`:
    {task: windows}, `encoder`: settings of the encoder block, for the descriptor."""
    model_dir, pools = tiny_model
    nodes = nodes or single_frame_nodes(pools)
    for n in nodes:
        await n.start()
    zmq_endpoint = f"tcp://127.0.0.1:{free_port()}"
    path = write_descriptor(model_dir, tmp_path / "descriptors" / "xapp.yaml", [n.endpoint for n in nodes],
                            zmq_endpoint, redis_url, free_port(), wire=wire)
    if windows or encoder:
        doc = yaml.safe_load(path.read_text())
        for task, count in (windows or {}).items():
            doc["tasks"][task]["windows"] = count
        doc["encoder"] |= encoder or {}
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    metrics = Metrics()
    app = XApp(load_descriptor(path), metrics, Overrides(threads=1, ops_host="127.0.0.1", watch_interval_s=0.1))
    stop = asyncio.Event()
    app_task = asyncio.create_task(app.run(stop))
    listener = DecisionListener(zmq_endpoint)
    system = System(app, metrics, nodes, listener, path)
    collector = asyncio.create_task(system.collect())
    try:
        await until(lambda: app.ready() or app_task.done(), "xApp ready")
        if app_task.done():
            app_task.result()
        yield system
    finally:
        collector.cancel()
        stop.set()
        await app_task
        listener.close()
        for n in nodes:
            await n.stop()


def run(coro):
    asyncio.run(asyncio.wait_for(coro, 120))


def test_auto_runtime_is_measured_at_start_then_cached_and_serves_fp32s_decisions(tiny_model, redis_url, tmp_path,
                                                                                    monkeypatch):
    """`runtime: auto` at fp32: torch and ONNX Runtime are timed on the plan at start-up; either serves
    the fitted labels exactly. A restart reads the choice from the cache instead of measuring again."""
    monkeypatch.setenv("XAPP_CACHE_DIR", str(tmp_path / "cache"))
    seen = []

    async def scenario():
        async with running(tiny_model, redis_url, tmp_path, encoder={"runtime": "auto", "precision": "fp32"}) as s:
            await until(lambda: len(s.decisions) >= 20, "20 decisions")
            for _, d in s.decisions:
                assert d.label == s.truth(d), f"{d.node_id} {d.task} seq {d.sequence_number}"
            [sample] = [x for x in s.metrics.registry.collect() if x.name == "xapp_engine_setting"][0].samples
            seen.append(sample.labels)

    run(scenario())
    run(scenario())
    assert seen[0]["how"] == "measured" and seen[1]["how"] == "cached"
    assert seen[0]["runtime"] == seen[1]["runtime"] in ("torch", "onnxruntime")
    assert seen[0]["precision"] == seen[1]["precision"] == "fp32"


@pytest.mark.parametrize("wire", ["decision", "batch"])
def test_decisions_reach_zmq_and_redis_with_correct_labels(tiny_model, redis_url, tmp_path, wire):
    async def scenario():
        async with running(tiny_model, redis_url, tmp_path, wire) as s:
            await until(lambda: all(any(d.node_id == n.node_id for _, d in s.decisions) for n in s.nodes),
                        "decisions from every node")
            await until(lambda: len(s.decisions) >= 40, "40 decisions")
            for _, d in s.decisions:
                assert d.label == s.truth(d), f"{d.node_id} {d.task} seq {d.sequence_number}"
                assert d.exit_layer == (1 if d.task == "modulation" else 2)
                assert d.t_decision_ns >= d.t_arrival_ns >= d.t_indication_ns > 0
            # the beam decision was acted on: each beam node now serves the beam the xApp chose
            beam_nodes = [n for n in s.nodes if "beam" in n.pools]
            await until(lambda: all(n.controls for n in beam_nodes), "beam switch controls")
            for n in beam_nodes:
                assert n.serving_beam == int(n.pools["beam"].labels[0][4:])
            await until(lambda: s.metric("xapp_published_total", sink="redis") >= 40, "redis writes")
            return s.nodes

    nodes = asyncio.run(asyncio.wait_for(scenario(), 120))
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    for n in nodes:
        task = next(iter(n.pools))
        latest = r.hgetall(hash_key(n.node_id, task))
        assert latest["label"] == n.pools[task].labels[0] and latest["task"] == task
    truth = {(n.node_id, task): n.pools[task].labels[0] for n in nodes for task in n.pools}
    raw = redis.Redis.from_url(redis_url)
    streamed = 0
    for task in ("beam", "modulation"):
        for _, entry in raw.xrange(stream_key(task)):
            if wire == "batch":
                assert set(entry) == {b"node_id", b"task", b"count", b"batch"}
                decisions = decode_batch(entry[b"batch"])
                assert len(decisions) == int(entry[b"count"]) >= 1
                labels = [(d.node_id, d.task, d.label) for d in decisions]
            else:
                labels = [(entry[b"node_id"].decode(), entry[b"task"].decode(), entry[b"label"].decode())]
            assert all(label == truth[(node, t)] and t == task for node, t, label in labels)
            streamed += len(labels)
    assert streamed >= 20


def test_killed_node_is_resubscribed_and_decisions_resume(tiny_model, redis_url, tmp_path):
    async def scenario():
        async with running(tiny_model, redis_url, tmp_path) as s:
            node = s.nodes[1]
            await until(lambda: any(d.node_id == node.node_id for _, d in s.decisions), "first decisions")
            await node.stop()
            await until(lambda: not s.app.subscribers[node.node_id].up, "subscription noticed down")
            await asyncio.sleep(0.3)
            restarted = time.time_ns()
            await node.start()
            await until(lambda: any(d.node_id == node.node_id and d.t_indication_ns > restarted for _, d in s.decisions),
                        "decisions from the restarted node")
            assert s.metric("xapp_e2_reconnects_total", node=node.node_id) >= 1
            # the other nodes never stopped being served
            others = {d.node_id for t, d in s.decisions if d.t_indication_ns > restarted}
            assert others >= {n.node_id for n in s.nodes}

    run(scenario())


def test_malformed_frames_rejected_good_frames_still_served(tiny_model, redis_url, tmp_path):
    async def scenario():
        async with running(tiny_model, redis_url, tmp_path) as s:
            node = s.nodes[2]
            kinds = ["length", "nan", "garbage_header", "garbage_payload", "shape", "dtype", "unknown_task", "oversize"]
            node.inject(kinds)
            await until(lambda: len(node.malformed_sent) == len(kinds), "malformed frames sent")
            last_bad = max(seq for seq, _ in node.malformed_sent)
            await until(lambda: any(d.node_id == node.node_id and d.sequence_number > last_bad for _, d in s.decisions),
                        "good frames after the bad ones served")
            for reason in ("length", "non_finite", "bad_header", "bad_payload", "shape", "dtype", "unknown_task", "oversize"):
                assert s.metric("xapp_frames_rejected_total", node=node.node_id, reason=reason) == 1, reason
            bad = {seq for seq, _ in node.malformed_sent}
            served = {d.sequence_number for _, d in s.decisions if d.node_id == node.node_id}
            assert not bad & served
            assert all(d.label == s.truth(d) for _, d in s.decisions)
            assert s.app.subscribers[node.node_id].up  # the stream itself survived

    run(scenario())


def test_descriptor_edit_changes_exit_live_and_invalid_edit_is_refused(tiny_model, redis_url, tmp_path):
    async def scenario():
        async with running(tiny_model, redis_url, tmp_path) as s:
            beam_from = lambda k: [d for _, d in s.decisions if d.task == "beam" and d.exit_layer == k]  # noqa: E731
            await until(lambda: len(beam_from(2)) >= 5, "beam decisions at exit 2")
            doc = yaml.safe_load(s.path.read_text())
            doc["tasks"]["beam"]["exit"] = 3
            doc["tasks"]["beam"]["head"] = doc["tasks"]["beam"]["head"].replace("exit2", "exit3")
            doc["batching"]["max_batch"] = 8
            s.path.write_text(yaml.safe_dump(doc, sort_keys=False))
            await until(lambda: len(beam_from(3)) >= 5, "beam decisions at exit 3 after the edit")
            assert s.metric("xapp_descriptor_reloads_total", outcome="applied") == 1
            assert s.app.batcher.limits.max_batch == 8
            switched = len(s.decisions)

            doc["tasks"]["beam"]["exit"] = 99  # deeper than the encoder
            s.path.write_text(yaml.safe_dump(doc, sort_keys=False))
            await until(lambda: s.metric("xapp_descriptor_reloads_total", outcome="rejected") == 1, "invalid edit rejected")
            await until(lambda: len(s.decisions) >= switched + 20, "decisions continue")
            assert {d.exit_layer for _, d in s.decisions[switched:] if d.task == "beam"} == {3}
            assert all(d.label == s.truth(d) for _, d in s.decisions)
            frames_in = s.metric("xapp_frames_in_total", node="e2node-1", task="beam")
            assert frames_in > 0
        # after a clean shutdown every frame that came in was served: the reloads dropped nothing
        served = sum(s.metric("xapp_decisions_total", task=t, exit=str(k)) for t in TASKS for k in (1, 2, 3))
        received = sum(s.metric("xapp_frames_in_total", node=n.node_id, task=t) for n in s.nodes for t in TASKS)
        shed = sum(s.metric("xapp_frames_shed_total", task=t, reason=r) for t in TASKS
                   for r in ("deadline", "queue_full", "no_task", "engine_error", "closed"))
        assert shed == 0 and served == received

    run(scenario())


def test_descriptor_edit_adds_and_removes_nodes_live(tiny_model, redis_url, tmp_path):
    async def scenario():
        async with running(tiny_model, redis_url, tmp_path) as s:
            node = s.nodes[3]
            doc = yaml.safe_load(s.path.read_text())
            full = list(doc["e2"]["nodes"])
            doc["e2"]["nodes"] = [n for n in full if n["id"] != node.node_id]
            s.path.write_text(yaml.safe_dump(doc, sort_keys=False))
            await until(lambda: node.node_id not in s.app.subscribers and node.active_streams == 0, "node dropped")
            removed = time.time_ns()
            doc["e2"]["nodes"] = full
            s.path.write_text(yaml.safe_dump(doc, sort_keys=False))
            await until(lambda: any(d.node_id == node.node_id and d.t_indication_ns > removed for _, d in s.decisions),
                        "decisions from the node added back")
            assert s.metric("xapp_descriptor_reloads_total", outcome="applied") == 2

    run(scenario())


def test_a_task_read_in_windows_is_served_captures_and_decides_each_once(tiny_model, redis_url, tmp_path):
    """modulation with `windows: 2`: the xApp asks the nodes for 2048-sample frames and decides each once,
    at twice the FLOPs of one window; beam beside it is unchanged."""
    from xapp.e2.sim import build_pools
    from xapp.model import exit_flops, load_head

    model_dir, pools = tiny_model
    captures = build_pools(["modulation"], 4, seed=21, snr_db=(25.0, 30.0), samples={"modulation": 2048})
    nodes = [SimulatedNode("e2node-0", captures, rate_hz=40.0), SimulatedNode("e2node-1", {"beam": pools["beam"]}, rate_hz=40.0)]

    async def scenario():
        async with running(tiny_model, redis_url, tmp_path, nodes=nodes, windows={"modulation": 2}) as s:
            await until(lambda: sum(d.task == "modulation" for _, d in s.decisions) >= 10, "modulation decisions")
            await until(lambda: sum(d.task == "beam" for _, d in s.decisions) >= 10, "beam decisions")
            encoder_cfg = s.app.engine.encoder.cfg
            head, _ = load_head(model_dir / "modulation-exit1.safetensors")
            one_window = (exit_flops(encoder_cfg, 65)[0] + head.flops(65)) / 1e9
            for _, d in s.decisions:
                if d.task == "modulation":
                    assert d.exit_layer == 1 and d.gflops == pytest.approx(2 * one_window, rel=1e-6)
            assert s.metric("xapp_frames_rejected_total", node="e2node-0", reason="shape") == 0
            assert s.app.table["modulation"].windows == 2

    run(scenario())
