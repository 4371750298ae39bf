"""Shared fixtures: a real Redis server spawned once per test session on a free port, and a tiny
model (seeded encoder + heads fitted to the frames the simulated nodes will stream) for
end-to-end runs of the xApp."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from xapp.ops.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
TINY = {"dim": 128, "depth": 4, "heads": 4}
TINY_TASKS = ("modulation", "beam")
TINY_EXITS = {"modulation": (1,), "beam": (2, 3)}
TINY_POOL = 24


@pytest.fixture(scope="session", autouse=True)
def side_kernels_compiled():
    """The side features' CPU kernels compiled into numba's cache once, before any test starts an xApp
    process: on a fresh clone the first compile takes ~16 s, which an end-to-end test's wait for
    readiness should not absorb."""
    from xapp.model.side import compile_kernels

    compile_kernels()


@pytest.fixture(scope="session", autouse=True)
def engine_choice_cache(tmp_path_factory):
    """`encoder.runtime/precision: auto` caches what it measured (xapp.engine.choose): here in a directory
    of this session, inherited by the xApp processes tests start, not in the user's ~/.cache."""
    import os

    path = tmp_path_factory.mktemp("xapp-cache")
    before = os.environ.get("XAPP_CACHE_DIR")
    os.environ["XAPP_CACHE_DIR"] = str(path)
    yield path
    if before is None:
        del os.environ["XAPP_CACHE_DIR"]
    else:
        os.environ["XAPP_CACHE_DIR"] = before


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server):
    """A URL to a database flushed for this test."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    client.close()
    return redis_server.url


def task_classes(task: str) -> tuple[str, ...]:
    from xapp.data import TASKS

    return TASKS[task].classes


def fit_head(encoder, pool, k: int):
    """A linear head that labels every frame of `pool` correctly at exit k (checked here): the
    minimum-norm least-squares fit to one-hot targets, exact since frames < feature dimensions."""
    from xapp.model import Head

    classes = task_classes(pool.task)
    head = Head(encoder.cfg.dim, len(classes))
    y = torch.tensor([classes.index(label) for label in pool.labels])
    with torch.no_grad():
        feats = head.features(encoder(torch.from_numpy(pool.frames), [k])[k])
        x = torch.cat([feats, torch.ones(len(feats), 1)], dim=1)
        w = torch.linalg.pinv(x) @ torch.nn.functional.one_hot(y, head.num_classes).float()
        head.out.weight.copy_(w[:-1].T)
        head.out.bias.copy_(w[-1])
        assert (head.out(feats).argmax(-1) == y).all(), f"{pool.task} head did not fit the pool at exit {k}"
    return head.eval()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """(directory with encoder.safetensors and <task>-exit<k>.safetensors heads, frame pools)."""
    from xapp.e2.sim import build_pools
    from xapp.model import Encoder, EncoderConfig, load_encoder, save_encoder, save_head

    d = tmp_path_factory.mktemp("tiny-model")
    torch.manual_seed(0)
    save_encoder(d / "encoder.safetensors", Encoder(EncoderConfig(**TINY)))
    encoder = load_encoder(d / "encoder.safetensors")  # what the xApp will load (fp16-rounded weights)
    pools = build_pools(TINY_TASKS, TINY_POOL, seed=11, snr_db=(25.0, 30.0))
    for task in TINY_TASKS:
        for k in TINY_EXITS[task]:
            head = fit_head(encoder, pools[task], k)
            save_head(d / f"{task}-exit{k}.safetensors", head, {"task": task, "exit": k, "classes": list(task_classes(task))})
    return d, pools


def write_descriptor(model_dir: Path, dst: Path, nodes, zmq_endpoint: str, redis_url: str, http_port: int,
                     beam_exit: int = 2, wire: str = "decision") -> Path:
    """descriptors/default.yaml adapted to the tiny model, the given nodes and free ports."""
    from xapp.harness.demo import adapt_descriptor

    def edit(doc: dict) -> None:
        # The fitted heads label their pools exactly in fp32; the runtime choice has tests of its own.
        doc["encoder"] |= {"checkpoint": str(model_dir / "encoder.safetensors"), "runtime": "torch", "precision": "fp32"}
        doc["tasks"] = {
            "modulation": {"exit": 1, "head": str(model_dir / "modulation-exit1.safetensors"), "policy": {"kind": "fixed"}},
            "beam": {"exit": beam_exit, "head": str(model_dir / f"beam-exit{beam_exit}.safetensors"),
                     "policy": {"kind": "fixed"}, "control": {"beam_switch": True}},
        }
        doc["e2"]["reconnect"] = {"initial_backoff_ms": 50, "max_backoff_ms": 200, "jitter": 0.2}
        doc["batching"] = {"max_batch": 16, "max_wait_ms": 5, "queue_limit": 512, "deadline_ms": 5000}
        doc["publish"]["wire"] = wire

    return adapt_descriptor(ROOT / "descriptors" / "default.yaml", dst, nodes=nodes, zmq_endpoint=zmq_endpoint,
                            redis_url=redis_url, http_port=http_port, edit=edit)


def single_frame_nodes(pools, count: int = 4, rate_hz: float = 40.0):
    """Nodes that each stream one frame of one task over and over (tasks alternate, frames and
    labels differ), so every decision's correct label is known: node.pools[task].labels[0]."""
    from xapp.e2.sim import FramePool, SimulatedNode

    nodes = []
    for i in range(count):
        task = TINY_TASKS[i % len(TINY_TASKS)]
        pool, j = pools[task], 5 * i + 1
        one = FramePool.from_arrays(task, pool.frames[j : j + 1], pool.labels[j : j + 1], [28.0])
        nodes.append(SimulatedNode(f"e2node-{i}", {task: one}, rate_hz=rate_hz))
    return nodes
