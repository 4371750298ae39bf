"""Static-graph serving on CPU (eager segments): bucketing, padding and row mapping give the engine's
decisions; graph capture itself needs CUDA and runs in scripts/gpu_check.py."""

import time

import numpy as np
import pytest
import torch

from xapp.engine.runner import EarlyExitEngine, TaskPlan
from xapp.engine.static_graph import BUCKETS, StaticGraphEngine, StaticGraphError, bucket_for, exit_order, segments
from xapp.model import Encoder, EncoderConfig, Head
from xapp.model.policies import Policy
from xapp.ops.metrics import Metrics
from xapp.vocab import Request

CFG = EncoderConfig(dim=32, depth=6, heads=4)
CLASSES = {"modulation": tuple(f"m{i}" for i in range(11)), "interference": tuple(f"i{i}" for i in range(6)),
           "beam": tuple(f"beam{i:02d}" for i in range(16))}
EXITS = {"modulation": 1, "interference": 3, "beam": 5}


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return Encoder(CFG).eval()


@pytest.fixture(scope="module")
def table():
    torch.manual_seed(1)
    return {t: TaskPlan(t, CLASSES[t], {EXITS[t]: Head(CFG.dim, len(CLASSES[t])).eval()}) for t in CLASSES}


def frames(n: int, seed: int) -> list[Request]:
    rng = np.random.default_rng(seed)
    tasks = list(CLASSES)
    out = []
    for i in range(n):
        task = tasks[rng.integers(len(tasks))]
        shape = (16, 64) if task == "beam" else (1, 1024)
        x = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
        t = time.monotonic()
        out.append(Request(f"node{i % 3}", task, x, i, "cell0", time.time_ns(), t, t + 1.0))
    return out


def serve(engine, batches, table) -> tuple[dict, list]:
    released = []
    for batch in batches:
        engine.run(batch, table, released.append)
    return {(d.task, d.seq): d for group in released for d in group}, released


def test_buckets_pick_the_smallest_that_fits():
    assert [bucket_for(n, (32, 64, 128)) for n in (1, 32, 33, 128)] == [32, 32, 64, 128]
    with pytest.raises(StaticGraphError, match="129 rows exceed the largest bucket 128"):
        bucket_for(129, (32, 64, 128))


def test_default_buckets_pad_an_even_three_task_mix_by_under_a_tenth():
    # A batch of 1,024 rows split evenly over tasks leaving at exits 1, 3 and 4 (the default descriptor's
    # plan): block 1 runs on every row, blocks 2-3 on two thirds, block 4 on one third, each padded up.
    rows = {1: 1024, 2: 683, 3: 683, 4: 342}
    padded = sum(bucket_for(n, BUCKETS) for n in rows.values())
    assert padded / sum(rows.values()) < 1.1
    assert sum(bucket_for(n, (32, 64, 128, 256, 512, 1024)) for n in rows.values()) / sum(rows.values()) > 1.3


def test_exit_order_keeps_the_rows_still_running_a_prefix():
    rng = np.random.default_rng(0)
    task_of = rng.integers(0, 3, 200)
    exits = np.array([1, 3, 5])[task_of]
    order = exit_order(exits, task_of)
    for k in (1, 3, 5):
        reach = int(np.count_nonzero(exits >= k))
        assert (exits[order][:reach] >= k).all() and (exits[order][reach:] < k).all()
    # each task's rows at its exit are contiguous
    assert np.count_nonzero(np.diff(task_of[order])) == 2


def test_segments_cover_the_trunk_once_up_to_the_deepest_exit(table):
    parts = segments(list(table.values()))
    assert [(s.first_block, s.exit, s.tasks) for s in parts] == [(0, 1, (0,)), (1, 3, (1,)), (3, 5, (2,))]


@pytest.mark.parametrize("batch", [7, 32, 45, 100])
def test_same_decisions_as_the_engine(encoder, table, batch):
    """Batches of any size, below, at and above the largest bucket (64 here), padded into buckets."""
    reqs = frames(150, seed=batch)
    batches = [reqs[i:i + batch] for i in range(0, len(reqs), batch)]
    want, _ = serve(EarlyExitEngine(encoder, Metrics()), batches, table)
    static = StaticGraphEngine(encoder, Metrics(), buckets=(16, 32, 64))
    got, groups = serve(static, batches, table)
    assert got.keys() == want.keys() and len(got) == len(reqs)
    for key, d in want.items():
        g = got[key]
        assert (g.label, g.class_index, g.exit, g.node_id, g.t_node_ns) == (d.label, d.class_index, d.exit, d.node_id,
                                                                          d.t_node_ns)
        assert g.confidence == pytest.approx(d.confidence, abs=1e-5)
        assert g.gflops == pytest.approx(d.gflops, rel=1e-9)
    for group in groups:  # one release per exit, shallow exits first
        assert len(set(group.exit)) == 1
    assert static.graphs == 0  # no capture on CPU


def test_a_new_table_replans_and_unknown_tasks_are_shed(encoder, table):
    engine = StaticGraphEngine(encoder, Metrics(), buckets=(32,))
    reqs = frames(20, seed=3)
    deep = {t: TaskPlan(t, p.classes, {CFG.depth: Head(CFG.dim, len(p.classes)).eval()}) for t, p in table.items()}
    got, _ = serve(engine, [reqs], deep)
    assert {d.exit for d in got.values()} == {CFG.depth}
    only_beam = {"beam": table["beam"]}
    metrics = Metrics()
    engine = StaticGraphEngine(encoder, metrics, buckets=(32,))
    got, _ = serve(engine, [reqs], only_beam)
    assert {d.task for d in got.values()} == {"beam"}
    assert metrics.total("xapp_frames_shed_total", reason="no_task") == sum(r.task != "beam" for r in reqs)


def test_prepare_builds_every_segment_and_bucket_ahead(encoder, table):
    engine = StaticGraphEngine(encoder, Metrics(), buckets=(16, 32, 64, 128))
    engine.prepare(table, CFG.tokens(1, 1024), max_rows=40)
    assert sorted(engine._runners) == [(CFG.tokens(1, 1024), s, b) for s in range(3) for b in (16, 32, 64)]


def test_dynamic_policies_are_refused(encoder, table):
    dynamic = dict(table)
    plan = table["modulation"]
    dynamic["modulation"] = TaskPlan("modulation", plan.classes, {1: plan.heads[1], 2: Head(CFG.dim, 11).eval()},
                                     Policy("confidence", 0.9))
    with pytest.raises(StaticGraphError, match="static graphs serve fixed exits only"):
        serve(StaticGraphEngine(encoder, Metrics()), [frames(4, seed=4)], dynamic)


def test_plans_read_in_windows_are_refused(encoder, table):
    windowed = dict(table)
    plan = table["modulation"]
    windowed["modulation"] = TaskPlan("modulation", plan.classes, plan.heads, windows=2, frame_shape=(1, 1024))
    with pytest.raises(StaticGraphError, match="static graphs serve one window per frame"):
        StaticGraphEngine(encoder, Metrics()).use(windowed)


def test_capture_needs_cuda(encoder):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(StaticGraphError, match="graph capture needs CUDA"):
        StaticGraphEngine(encoder, Metrics(), capture=True)


def test_both_engines_serve_the_calibrated_confidence(encoder):
    """A head's temperature reaches the confidence each decision carries, in either engine."""
    torch.manual_seed(2)
    hot = {t: TaskPlan(t, CLASSES[t], {EXITS[t]: Head(CFG.dim, len(CLASSES[t]), temperature=3.0).eval()})
           for t in CLASSES}
    reqs = frames(40, seed=9)
    logits = {}
    with torch.inference_mode():
        for r in reqs:
            k = EXITS[r.task]
            logits[r.task, r.seq] = hot[r.task].heads[k](encoder(torch.from_numpy(r.frame[None]), [k])[k])[0]
    calibrated = {key: float(z.softmax(-1).max()) for key, z in logits.items()}
    raw = {key: float((3.0 * z).softmax(-1).max()) for key, z in logits.items()}
    assert np.mean([abs(raw[k] - calibrated[k]) for k in raw]) > 1e-2  # the temperature matters on these heads
    for engine in (EarlyExitEngine(encoder, Metrics()), StaticGraphEngine(encoder, Metrics(), buckets=(16, 32, 64))):
        served, _ = serve(engine, [reqs], hot)
        assert {key: d.confidence for key, d in served.items()} == pytest.approx(calibrated, abs=1e-5)
