"""Columnar decisions, their wire forms, the engine's precisions and the speed benches' plumbing."""

import asyncio
import dataclasses
import time
import sys

import numpy as np
import pytest
import torch

from xapp.engine.precision import PrecisionError, RuntimeMissing, cpu_has_bf16, serving_trunk
from xapp.engine.runner import EarlyExitEngine, TaskPlan
from xapp.harness.hostbench import STAGES, measure, trivial_encoder, trivial_table
from xapp.engine.choose import Setting, choose, compare
from xapp.harness.precisionbench import variants
from xapp.model import Encoder, EncoderConfig, Head
from xapp.ops.decision_metrics import record_decisions
from xapp.ops.metrics import Metrics, observe_many
from xapp.publish.codec import decode, encoded, redis_entries
from xapp.vocab import Decision, DecisionBatch, Request

CFG = EncoderConfig(dim=32, depth=3, heads=2)
MOD = tuple(f"m{i}" for i in range(5))
BEAMS = tuple(f"beam{i:02d}" for i in range(4))
SHAPES = {"modulation": (1, 1024), "beam": (16, 64)}


def decisions() -> list[Decision]:
    return [Decision(f"n{i}", "beam" if i % 2 else "modulation", f"c{i}", i, 0.5 + i / 100, 1 + i % 2, 0.01 * i, 100 + i,
                     "cell", 10 + i, 20 + i, 30 + i, "fixed", None if i % 3 else "c0") for i in range(5)]


def test_batch_holds_the_same_decisions_as_columns():
    ds = decisions()
    batch = DecisionBatch.of(ds)
    assert len(batch) == 5 and list(batch) == ds
    assert list(batch.of_tasks({"beam"})) == [d for d in ds if d.task == "beam"]


def test_batch_serialisation_matches_each_decision():
    ds = decisions()
    for (topic, payload), d in zip(encoded(DecisionBatch.of(ds)), ds):
        msg = decode(payload)
        assert topic == f"{d.task}/{d.node_id}".encode()
        assert (msg.node_id, msg.task, msg.label, msg.class_index, msg.exit_layer, msg.sequence_number) == (
            d.node_id, d.task, d.label, d.class_index, d.exit, d.seq)
        assert (msg.t_indication_ns, msg.t_arrival_ns, msg.t_decision_ns, msg.policy) == (
            d.t_node_ns, d.t_arrival_ns, d.t_decision_ns, d.policy)
        assert msg.confidence == pytest.approx(d.confidence) and msg.gflops == pytest.approx(d.gflops)
    node, task, packed = redis_entries(ds)[2]
    assert (node, task) == ("n2", "modulation")
    bulk = packed.split(b"\r\n")[1::2]  # "$<length>", value, ...: the values
    fields = dict(zip(bulk[0::2], bulk[1::2]))
    assert fields[b"confidence"] == b"0.520000" and fields[b"exit_layer"] == b"1" and fields[b"cell_id"] == b"cell"
    assert fields[b"t_decision_ns"] == b"32" and len(fields) == 13


def test_batch_metrics_count_what_per_decision_updates_would():
    metrics = Metrics()
    record_decisions(metrics, DecisionBatch.of(decisions()))
    get = metrics.registry.get_sample_value
    assert get("xapp_node_decisions_total", {"task": "beam", "node": "n1"}) == 1
    assert get("xapp_decision_gflops_total", {"task": "beam"}) == pytest.approx(0.04)
    assert get("xapp_decisions_scored_total", {"task": "modulation", "outcome": "correct"}) == 1
    assert get("xapp_decisions_scored_total", {"task": "beam", "outcome": "wrong"}) == 1
    # confidences 0.50-0.54: modulation's three are <= 0.5 (one) or in (0.5, 0.7] (two)
    assert get("xapp_decision_confidence_bucket", {"task": "modulation", "le": "0.5"}) == 1
    assert get("xapp_decision_confidence_bucket", {"task": "modulation", "le": "0.7"}) == 3
    assert get("xapp_decision_confidence_sum", {"task": "beam"}) == pytest.approx(0.51 + 0.53)


def test_batch_metrics_equal_one_update_per_decision():
    def samples(metrics: Metrics) -> dict:
        return {(m.name, s.name, tuple(sorted(s.labels.items()))): s.value
                for m in metrics.registry.collect() for s in m.samples if not s.name.endswith("_created")}

    mixed = decisions() + [dataclasses.replace(d, t_decision_ns=d.t_decision_ns + 50) for d in decisions()]
    released_at_once = [dataclasses.replace(d, task="beam", t_decision_ns=77) for d in mixed]  # as the engine releases
    for batch in (mixed, [d for d in mixed if d.task == "beam"], [dataclasses.replace(d, truth=None) for d in mixed],
                  released_at_once):
        at_once, one_by_one = Metrics(), Metrics()
        record_decisions(at_once, DecisionBatch.of(batch))
        for d in batch:
            record_decisions(one_by_one, DecisionBatch.of([d]))
        assert samples(at_once) == pytest.approx(samples(one_by_one))


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return Encoder(CFG).eval()


def table(encoder):
    torch.manual_seed(1)
    return {"modulation": TaskPlan("modulation", MOD, {1: Head(CFG.dim, len(MOD)).eval()}),
            "beam": TaskPlan("beam", BEAMS, {3: Head(CFG.dim, len(BEAMS)).eval()})}


def frames(n: int) -> list[Request]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        task = "beam" if i % 2 else "modulation"
        shape = SHAPES[task]
        x = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
        label = (BEAMS if task == "beam" else MOD)[i % 4]
        out.append(Request(f"n{i % 2}", task, x, i, "cell", time.time_ns(), time.monotonic(), float("inf"), label))
    return out


def test_int8_engine_quantises_a_copy_and_keeps_decisions_close(encoder):
    plans = table(encoder)
    got = {}
    for precision in ("fp32", "int8"):
        out = []
        EarlyExitEngine(encoder, Metrics(), precision).run(frames(16), plans, out.extend)
        got[precision] = {(d.task, d.seq): d for d in out}
    assert got["fp32"].keys() == got["int8"].keys() and len(got["fp32"]) == 16
    conf = np.array([[got[p][k].confidence for k in sorted(got["fp32"])] for p in ("fp32", "int8")])
    assert np.abs(conf[0] - conf[1]).max() < 0.05
    assert all(isinstance(m, torch.nn.Linear) for m in encoder.blocks.modules() if "Linear" in type(m).__name__)


def test_unknown_or_unsupported_precision_is_refused(encoder, tmp_path):
    with pytest.raises(PrecisionError, match="expected one of"):
        serving_trunk(encoder, "fp8")
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags : fpu avx2 avx512f\n")
    assert not cpu_has_bf16(cpuinfo)
    cpuinfo.write_text("flags : fpu avx512f avx512_bf16\n")
    assert cpu_has_bf16(cpuinfo)
    if not cpu_has_bf16():
        with pytest.raises(PrecisionError, match="bf16"):
            EarlyExitEngine(encoder, Metrics(), "bf16")


@pytest.mark.skipif(not cpu_has_bf16(), reason="bf16 is served only on CPUs with native bf16")
def test_bf16_trunk_holds_its_linear_weights_in_bf16_with_autocasts_own_numbers(encoder):
    trunk = serving_trunk(encoder, "bf16")
    assert trunk is not encoder
    assert all(m.weight.dtype == torch.bfloat16 for m in trunk.blocks.modules() if isinstance(m, torch.nn.Linear))
    assert all(p.dtype == torch.float32 for p in encoder.parameters())  # the shared encoder is untouched
    h = encoder.tokens(torch.from_numpy(np.stack([r.frame for r in frames(8) if r.task == "beam"])))
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(trunk.blocks[0](h), encoder.blocks[0](h))  # autocast casts the same weights alike


def test_precision_comparison_runs_every_variant_on_the_same_frames(encoder):
    result = compare(encoder, table(encoder), frames(12), 4, variants(torch.device("cpu")))
    variants_ = result["variants"]
    assert {"torch fp32", "torch int8", "onnxruntime fp32", "onnxruntime int8"} <= set(variants_)
    assert variants_["torch fp32"]["agreement_with_fp32"] == 1.0
    assert variants_["onnxruntime fp32"]["agreement_with_fp32"] == 1.0  # same arithmetic, another runtime
    assert set(variants_["torch int8"]["accuracy"]) == {"beam", "modulation"}
    agreeing = {n: v["frames_per_s"] for n, v in variants_.items() if v["agreement_with_fp32"] >= 0.99}
    assert {"torch fp32", "onnxruntime fp32"} <= set(agreeing)
    assert str(choose(result, 0.8)) == max(agreeing, key=agreeing.get)  # 12 frames: 100 % bounds it at 81.6 %
    assert choose(result, 0.99) == Setting("torch", "fp32")  # ... so none is sure to reach 99 %


def test_onnxruntime_engine_serves_the_torch_engines_decisions(encoder):
    """The blocks on ONNX Runtime: the same decisions as torch's, confidences within float rounding."""
    plans = table(encoder)
    got = {}
    for runtime in ("torch", "onnxruntime"):
        out = []
        EarlyExitEngine(encoder, Metrics(), "fp32", runtime=runtime).run(frames(16), plans, out.extend)
        got[runtime] = {(d.task, d.seq): (d.class_index, d.confidence, d.exit) for d in out}
    assert got["torch"].keys() == got["onnxruntime"].keys() and len(got["torch"]) == 16
    for key, (label, confidence, exit_) in got["torch"].items():
        assert got["onnxruntime"][key][0] == label and got["onnxruntime"][key][2] == exit_
        assert abs(got["onnxruntime"][key][1] - confidence) < 1e-4
    with pytest.raises(PrecisionError, match="onnxruntime serves fp32 or int8"):
        EarlyExitEngine(encoder, Metrics(), "bf16", runtime="onnxruntime")
    with pytest.raises(PrecisionError, match="expected one of"):
        EarlyExitEngine(encoder, Metrics(), "fp32", runtime="tensorrt")


def test_onnxruntime_not_installed_is_a_clear_error_and_the_bench_leaves_it_out(encoder, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # what an install without xapp[onnx] sees
    with pytest.raises(RuntimeMissing, match=r"onnxruntime is not installed \(pip install 'xapp\[onnx\]'\)"):
        EarlyExitEngine(encoder, Metrics(), "fp32", runtime="onnxruntime")
    assert not any(s.runtime == "onnxruntime" for s in variants(torch.device("cpu")))


def test_host_bench_reports_every_stage_per_batch_size(encoder):
    small = trivial_encoder(CFG)
    result = measure(small, trivial_table(small, {"modulation": 1, "beam": 2}, {"modulation": MOD, "beam": BEAMS}),
                     SHAPES, frames=16, batch_sizes=(1, 8), repeats=1)
    assert set(result) == {"1", "8"}
    for stages in result.values():
        assert set(STAGES) <= set(stages) and all(stages[s] >= 0 for s in STAGES)
        assert stages["publish"] > 0 and stages["decode_validate"] > 0
        assert stages["total"] == pytest.approx(sum(stages[s] for s in STAGES))


def test_descriptor_carries_the_engine_precision(tmp_path):
    from tests.test_config import base_doc, make_root, problems_of, write_doc
    from xapp.config import load_descriptor

    root = make_root(tmp_path)
    doc = base_doc()
    assert load_descriptor(write_doc(root, doc)).encoder.precision == "fp32"
    doc["encoder"]["precision"] = "int8"
    assert load_descriptor(write_doc(root, doc)).encoder.precision == "int8"
    doc["encoder"]["precision"] = "fp8"
    assert any("precision" in p for p in problems_of(write_doc(root, doc)))


def test_ingest_ceiling_is_the_highest_offer_served_in_full():
    from xapp.harness.ingest import ceiling

    rows = [{"offered_frames_per_s": 500.0, "sent_frames_per_s": 500.0, "decisions_per_s": 499.0, "shed": 0},
            {"offered_frames_per_s": 1000.0, "sent_frames_per_s": 955.0, "decisions_per_s": 940.0, "shed": 0},
            {"offered_frames_per_s": 1500.0, "sent_frames_per_s": 1490.0, "decisions_per_s": 1400.0, "shed": 0},  # 6 % lost
            {"offered_frames_per_s": 2000.0, "sent_frames_per_s": 1990.0, "decisions_per_s": 1990.0, "shed": 3},
            {"offered_frames_per_s": 3000.0, "sent_frames_per_s": 2800.0, "decisions_per_s": 2800.0, "shed": 0}]  # held back
    assert ceiling(rows) == 1000.0
    assert ceiling(rows[2:]) == 0.0


def test_ingest_descriptor_serves_a_trivial_model_at_the_same_exits(tmp_path):
    from xapp.engine.build import build_table
    from xapp.config import load_descriptor
    from xapp.config.shipped import default_descriptor
    from xapp.data import TASKS
    from xapp.harness.ingest import INGEST_DIM, INGEST_MAX_BATCH, trivial_model_descriptor
    from xapp.model import load_encoder

    shipped = load_descriptor(default_descriptor())
    encoder = load_encoder(shipped.encoder.checkpoint)
    classes = {t: TASKS[t].classes for t in shipped.enabled_tasks}
    ingest = load_descriptor(trivial_model_descriptor(shipped, encoder, classes, tmp_path))
    small = load_encoder(ingest.encoder.checkpoint)
    assert small.cfg.dim == INGEST_DIM and small.cfg.depth == encoder.cfg.depth
    assert {t: s.exit for t, s in ingest.enabled_tasks.items()} == {t: s.exit for t, s in shipped.enabled_tasks.items()}
    assert ingest.batching.max_batch == INGEST_MAX_BATCH
    assert set(build_table(ingest, small)) == set(shipped.enabled_tasks)


def test_a_node_dropped_from_service_loses_its_series_and_gets_a_fresh_one_back():
    metrics = Metrics()
    last = "xapp_node_last_decision_timestamp_seconds"
    metrics.serving({"beam": 1}, 50.0, ["n1", "n2"])
    record_decisions(metrics, DecisionBatch.of(decisions()[:3]))
    assert metrics.registry.get_sample_value(last, {"node": "n1"}) == pytest.approx(31e-9)
    metrics.serving({"beam": 2}, 50.0, ["n2"])
    assert metrics.registry.get_sample_value(last, {"node": "n1"}) is None
    assert metrics.registry.get_sample_value("xapp_task_exit", {"task": "beam"}) == 2
    metrics.serving({"beam": 2}, 50.0, ["n1", "n2"])
    record_decisions(metrics, DecisionBatch.of(decisions()[:3]))
    assert metrics.registry.get_sample_value(last, {"node": "n1"}) == pytest.approx(31e-9)
    assert metrics.child(metrics.node_decisions, "beam", "n1") is metrics.node_decisions.labels("beam", "n1")


def test_observe_many_records_what_observe_per_value_would():
    edges = [0.0, 0.0005, 0.00051, 0.002, 0.3, 2.0, 7.5, 0.01, 0.0101]  # on, just over and past bounds
    amounts = np.array(edges * 3)  # above SMALL_BATCH: the bucket counts path
    one_by_one, at_once = Metrics(), Metrics()
    for a in [*amounts, *edges]:
        one_by_one.stage_latency.labels("queue").observe(float(a))
    observe_many(at_once.stage_latency.labels("queue"), amounts)
    observe_many(at_once.stage_latency.labels("queue"), np.array(edges))  # below it: binned without numpy
    observe_many(at_once.stage_latency.labels("queue"), np.array([]))

    def samples(metrics):
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in metrics.registry.collect() if family.name == "xapp_stage_latency_seconds"
                for s in family.samples if not s.name.endswith("_created")}

    assert samples(at_once) == pytest.approx(samples(one_by_one))
    assert at_once.registry.get_sample_value("xapp_stage_latency_seconds_count", {"stage": "queue"}) == len(amounts) + len(edges)


def test_bench_waits_for_an_overload_to_drain_before_the_next_level():
    from xapp.harness.bench import drained

    async def scenario() -> tuple[float, float]:
        metrics = Metrics()
        metrics.queue_depth.set(5)

        async def backlog() -> float:
            for _ in range(6):  # frames keep arriving for ~0.3 s, then the queue empties
                metrics.frames_in.labels("n1", "beam").inc(8)
                await asyncio.sleep(0.05)
            metrics.queue_depth.set(0)
            return time.monotonic()

        arriving = asyncio.create_task(backlog())
        await drained(metrics, poll_s=0.1, timeout_s=5.0)
        return time.monotonic(), await arriving

    done, quiet = asyncio.run(scenario())
    assert done >= quiet
