"""Checks and speed of the CUDA serving path, in one run that ends within its budget (default 140 s).

    python3 scripts/gpu_check.py --json gpu_check.json            # on a GPU machine, from the repo root
    python scripts/gpu_check.py --device cpu --quick --json x.json  # dry run of every non-CUDA code path

1. exit_states: the state at every exit of one pass equals the full forward's (fp32) and matches the
   CPU forward to fp32 tolerance.
2. bf16_decisions: the engine's decisions on the device in bf16, eager (autocast) and from static
   graphs (xapp.engine.static_graph), agree with the same engine on CPU in fp32; accuracy of each.
3. throughput: naive serving (one full-depth model per task, batched per task) against shared-trunk
   early exit at each batch size, eager and static-graph, all building decisions; frames/s, the
   measured speed-up and the FLOP ratio beside it. The modes take turns within each repeat. Then the
   static modes' graphs alone (replayed without frames in or decisions out): the device's share.
4. peak: achieved trunk FLOP/s against an 8192^3 bf16 matmul timed in the same run and against the
   H200 datasheet's dense bf16 figure.
5. e2e: frames offered at a fixed rate (10 k/s) as encoded E2SM-IQ Indications, decoded and
   validated, through the batcher and the static-graph engine, decisions built and published on a
   ZMQ PUB socket (protobuf only, when pyzmq is missing); p50/p99 from Indication decode to publish.
   Single-frame Indications and the decision wire form, and once eight frames per Indication with
   the batch wire form (publish.wire: batch), the high-rate setting.

The JSON is rewritten after every section, so a run stopped by a timeout still leaves what it measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

STARTED = time.perf_counter()  # the budget counts imports and wheel installs too

import numpy as np  # noqa: E402
import torch  # noqa: E402


def install_carried_wheels(root: Path = Path(__file__).resolve().parent.parent) -> None:
    """A GPU machine may lack the xApp's own dependencies (pyzmq, redis, jsonschema): install the wheels
    carried in <repo>/.whl into a private directory on sys.path (pip --no-index: nothing is fetched)."""
    try:
        import jsonschema, redis, zmq  # noqa: F401, E401
        return
    except ImportError:
        wheels = sorted(str(w) for w in (root / ".whl").glob("*.whl"))
    if wheels:
        target = Path(tempfile.gettempdir()) / "gpu-check-site"
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--target", str(target), *wheels], check=True)
        sys.path.insert(0, str(target))


install_carried_wheels()

from xapp.config import load_descriptor  # noqa: E402
from xapp.data import generate  # noqa: E402
from xapp.e2.frames import decode_indication  # noqa: E402
from xapp.e2.types import FrameLimits  # noqa: E402
from xapp.engine.batcher import Batcher, BatcherClosed, BatchLimits  # noqa: E402
from xapp.engine.build import build_table, frame_limits, frame_shapes  # noqa: E402
from xapp.engine.runner import EarlyExitEngine, TaskPlan, TaskTable  # noqa: E402
from xapp.engine.static_graph import StaticGraphEngine  # noqa: E402
from xapp.model import load_encoder  # noqa: E402
from xapp.model.policies import Policy  # noqa: E402
from xapp.ops.metrics import Metrics  # noqa: E402
from xapp.vocab import DecisionBatch, Request  # noqa: E402

H200_BF16_DENSE_TFLOPS = 989.0  # NVIDIA H200 datasheet, dense (no sparsity)
BATCHES = (32, 64, 128, 256, 512, 1024)


class Clock:
    """Seconds left of the run's budget."""

    def __init__(self, budget_s: float, start: float) -> None:
        self.start, self.budget = start, budget_s

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.budget - self.elapsed()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def labelled_frames(tasks: Sequence[str], per_task: int, seed: int) -> list[Request]:
    """`per_task` generated frames of each task with their labels, interleaved round-robin."""
    per = []
    for i, task in enumerate(tasks):
        data = generate(task, per_task, seed + i)
        per.append([Request("gpu-check", task, data.x[j], j, "cell0", 0, 0.0, float("inf"), data.classes[int(data.y[j])])
                    for j in range(per_task)])
    return [reqs[j] for j in range(per_task) for reqs in per]


def serve(engine: EarlyExitEngine, table: TaskTable, batches: list[list[Request]]) -> list[DecisionBatch]:
    released: list[DecisionBatch] = []
    for batch in batches:
        engine.run(batch, table, released.append)
    return released


def chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def naive_table(table: TaskTable, depth: int) -> TaskTable:
    """Each task's exit head read after the last block: a full-depth model per task, same head cost."""
    return {t: TaskPlan(t, p.classes, {depth: p.heads[p.exit]}, Policy()) for t, p in table.items()}


def by_frame(released: list[DecisionBatch]) -> dict[tuple[str, int], tuple[str, str | None, int]]:
    return {(d.task, d.seq): (d.label, d.truth, d.exit) for b in released for d in b}


# -- 1. exit states ---------------------------------------------------------------------------

def exit_states(cpu_encoder, encoder) -> dict:
    rng = np.random.default_rng(0)
    device = next(encoder.parameters()).device
    depth = encoder.cfg.depth
    out = {}
    for shape in ((1, 1024), (16, 64)):
        x = torch.from_numpy((rng.standard_normal((8, *shape)) + 1j * rng.standard_normal((8, *shape))).astype(np.complex64))
        with torch.inference_mode():
            states = encoder(x.to(device), range(1, depth + 1))
            worst_exit = max((states[k] - encoder(x.to(device), [k])[k]).abs().max().item() for k in range(1, depth + 1))
            worst_cpu = (states[depth].cpu() - cpu_encoder(x, [depth])[depth]).abs().max().item()
        out[f"{shape[0]}x{shape[1]}"] = {"exit_vs_full_max_abs": worst_exit, "device_vs_cpu_max_abs": worst_cpu}
    return out


# -- 2. bf16 decisions ------------------------------------------------------------------------

def bf16_decisions(cpu_table: TaskTable, table: TaskTable, engines: dict[str, EarlyExitEngine], cpu_engine: EarlyExitEngine,
                   frames: list[Request], batch: int) -> dict:
    reference = by_frame(serve(cpu_engine, cpu_table, chunks(frames, batch)))
    result: dict = {"frames": len(frames), "batch": batch}
    for name, engine in engines.items():
        try:
            got = by_frame(serve(engine, table, chunks(frames, batch)))
        except Exception as exc:  # one engine failing leaves the other's numbers
            result[name] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        per_task = {}
        for task in table:
            keys = [k for k in reference if k[0] == task]
            per_task[task] = {
                "frames": len(keys),
                "agreement": float(np.mean([got[k][0] == reference[k][0] for k in keys])),
                "accuracy_cpu_fp32": float(np.mean([reference[k][0] == reference[k][1] for k in keys])),
                "accuracy_device": float(np.mean([got[k][0] == got[k][1] for k in keys])),
                "same_exit": bool(all(got[k][2] == reference[k][2] for k in keys)),
            }
        result[name] = per_task
    return result


# -- 3. throughput ----------------------------------------------------------------------------

def timed_passes(run: Callable[[], object], frames_per_run: int, device: torch.device, seconds: float) -> float:
    """Frames per second of repeated `run()` over at least `seconds` (at least one run)."""
    frames, start = 0, time.perf_counter()
    while True:
        run()
        frames += frames_per_run
        sync(device)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return frames / elapsed


def graphs_only(engine: StaticGraphEngine, plan: TaskTable, work: list[list[Request]], device: torch.device,
                seconds: float) -> float:
    """Frames/s of the trunk's graphs alone: the segment runners that one pass over `work` calls, replayed
    in the same order without loading frames, copying results back or building decisions. Beside the full
    pass it splits device time from host time."""
    calls: list[Callable[[], object]] = []
    runner = engine._runner

    def recording(*key: int) -> Callable[[], object]:
        calls.append(runner(*key))
        return calls[-1]

    engine._runner = recording
    try:
        serve(engine, plan, work)
    finally:
        del engine._runner  # the class's method again
    with torch.inference_mode(), torch.autocast(device.type, enabled=False):  # as the engine runs them
        return timed_passes(lambda: [call() for call in calls], sum(len(b) for b in work), device, seconds)


def throughput(encoder, table: TaskTable, frames: list[Request], batches: Sequence[int], seconds: float,
               clock: Clock, reserve_s: float) -> list[dict]:
    """Per batch size: naive and early exit, eager and static-graph, each mode `seconds` in 3 turns.
    A mode that fails is reported and left out of the later batch sizes; the others carry on."""
    device = next(encoder.parameters()).device
    naive = naive_table(table, encoder.cfg.depth)
    engines = {"eager": (EarlyExitEngine(encoder, Metrics()), EarlyExitEngine(encoder, Metrics())),
               "static": (StaticGraphEngine(encoder, Metrics()), StaticGraphEngine(encoder, Metrics()))}
    failed: dict[str, str] = {}
    rows = []
    for size in batches:
        if clock.left() < reserve_s + 8 * seconds:
            rows.append({"max_batch": size, "skipped": f"budget: {clock.left():.0f} s left"})
            continue
        mixed = chunks(frames, size)
        per_task = [b for task in table for b in chunks([r for r in frames if r.task == task], size)]
        modes = {}
        for kind, (naive_engine, ee_engine) in engines.items():
            modes[f"naive_{kind}"] = (naive_engine, naive, per_task)
            modes[f"early_exit_{kind}"] = (ee_engine, table, mixed)
        gflops, decided = {}, {}
        for name, (engine, plan, work) in list(modes.items()):  # warm-up: captures the graphs, counts FLOPs
            try:
                if name in failed:
                    raise RuntimeError(failed[name])
                released = serve(engine, plan, work)
                sync(device)
            except Exception as exc:
                failed.setdefault(name, f"{type(exc).__name__}: {exc}")
                del modes[name]
                continue
            gflops[name] = float(np.mean([g for b in released for g in b.gflops]))
            decided[name] = by_frame(released)
        rates: dict[str, list[float]] = {name: [] for name in modes}
        for _ in range(3):
            for name, (engine, plan, work) in modes.items():
                rates[name].append(timed_passes(lambda: serve(engine, plan, work), len(frames), device, seconds / 3))
        row: dict = {"max_batch": size, "frames_per_pass": len(frames)}
        for name in ("naive_static", "early_exit_static"):
            if name in modes:
                engine, plan, work = modes[name]
                try:
                    row[f"{name}_graphs_only_frames_per_s"] = graphs_only(engine, plan, work, device, seconds / 3)
                except Exception as exc:  # the full-pass numbers stand without it
                    row[f"{name}_graphs_only_error"] = f"{type(exc).__name__}: {exc}"
        if failed:
            row["failed_modes"] = dict(failed)
        for name in modes:
            row[f"{name}_frames_per_s"] = statistics.median(rates[name])
            row[f"{name}_per_turn"] = rates[name]
        naive_gflops = gflops.get("naive_eager", gflops.get("naive_static"))
        ee_gflops = gflops.get("early_exit_eager", gflops.get("early_exit_static"))
        flop_ratio = naive_gflops / ee_gflops if naive_gflops and ee_gflops else float("nan")
        row |= {"gflops_per_frame_naive": naive_gflops, "gflops_per_frame_early_exit": ee_gflops, "flop_ratio": flop_ratio}
        for name in modes:
            per_frame = naive_gflops if name.startswith("naive") else ee_gflops
            row[f"achieved_tflops_{name}"] = row[f"{name}_frames_per_s"] * per_frame / 1e3
        for kind in engines:
            if f"naive_{kind}" in modes and f"early_exit_{kind}" in modes:
                speedup = row[f"early_exit_{kind}_frames_per_s"] / row[f"naive_{kind}_frames_per_s"]
                row[f"speedup_{kind}"] = speedup
                row[f"speedup_over_flop_ratio_{kind}"] = speedup / flop_ratio
        if "naive_static_graphs_only_frames_per_s" in row and "early_exit_static_graphs_only_frames_per_s" in row:
            speedup = row["early_exit_static_graphs_only_frames_per_s"] / row["naive_static_graphs_only_frames_per_s"]
            row["speedup_graphs_only"] = speedup
            row["speedup_over_flop_ratio_graphs_only"] = speedup / flop_ratio
        if "early_exit_eager" in modes and "early_exit_static" in modes:
            row["static_vs_eager_early_exit"] = row["early_exit_static_frames_per_s"] / row["early_exit_eager_frames_per_s"]
            eager, static = decided["early_exit_eager"], decided["early_exit_static"]
            row["static_eager_decision_agreement"] = float(np.mean([static[k][0] == eager[k][0] for k in eager]))
        row["graphs_captured"] = engines["static"][0].graphs + engines["static"][1].graphs
        rows.append(row)
        print(f"  batch {size}: " + ", ".join(f"{n} {row[f'{n}_frames_per_s']:.0f}/s" for n in modes)
              + "".join(f"; speed-up {kind} {row[f'speedup_{kind}']:.2f}x" for kind in (*engines, "graphs_only")
                        if f"speedup_{kind}" in row)
              + f", FLOP ratio {flop_ratio:.2f}x ({clock.elapsed():.0f} s)", flush=True)
    return rows


# -- 4. percent of peak -----------------------------------------------------------------------

def matmul_tflops(device: torch.device, n: int, dtype: torch.dtype, seconds: float) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(5):
            a @ b
        count += 5
        sync(device)
    return 2.0 * n**3 * count / (time.perf_counter() - start) / 1e12


def peak(rows: list[dict], device: torch.device, quick: bool) -> dict:
    n, dtype = (1024, torch.float32) if device.type == "cpu" else (8192, torch.bfloat16)
    reference = matmul_tflops(device, n, dtype, 0.3 if quick else 1.0)
    out: dict = {"matmul": f"{n}^3 {str(dtype).removeprefix('torch.')}", "matmul_tflops": reference,
                 "datasheet_tflops": H200_BF16_DENSE_TFLOPS, "per_batch": []}
    for row in rows:
        if "skipped" in row:
            continue
        entry = {"max_batch": row["max_batch"]}
        for key in ("early_exit_eager", "early_exit_static", "naive_eager", "naive_static"):
            if f"achieved_tflops_{key}" not in row:
                continue
            tflops = row[f"achieved_tflops_{key}"]
            entry[f"{key}_tflops"] = tflops
            entry[f"{key}_percent_of_matmul"] = 100.0 * tflops / reference
            entry[f"{key}_percent_of_datasheet"] = 100.0 * tflops / H200_BF16_DENSE_TFLOPS
        out["per_batch"].append(entry)
    return out


# -- 5. end to end ----------------------------------------------------------------------------

async def offered_load(engine: EarlyExitEngine, table: TaskTable, indications: list, limits: FrameLimits,
                       batching: BatchLimits, rate: float, seconds: float, wire: str = "decision") -> dict:
    """`indications`: (node, Indication, frames it carries); `wire`: the descriptor's publish.wire."""
    from xapp.harness.hostbench import zmq_loopback  # needs pyzmq, which a GPU machine may lack
    from xapp.publish.fanout import serialised_once

    metrics = Metrics()
    sink = zmq_loopback(metrics)
    publish = sink[1].publish if wire == "decision" else serialised_once(sink[1].publish_groups)
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(1, thread_name_prefix="engine")
    batcher = Batcher(batching, metrics)
    latencies: list[np.ndarray] = []
    received = [0]

    def deliver(decisions: DecisionBatch) -> None:
        publish(decisions)
        while sink[2].poll(0):
            sink[2].recv_multipart()
            received[0] += 1
        latencies.append((time.time_ns() - np.array(decisions.t_arrival_ns, dtype=np.int64)) / 1e6)

    async def serve_loop() -> None:
        while True:
            try:
                batch = await batcher.next_batch()
            except BatcherClosed:
                return
            report = await loop.run_in_executor(executor, engine.run, batch, table,
                                                lambda d: loop.call_soon_threadsafe(deliver, d))
            batcher.observe_service_time(report.seconds)

    server = asyncio.create_task(serve_loop())
    start, sent, rejected = time.monotonic(), 0, 0
    turn = 0
    while (elapsed := time.monotonic() - start) < seconds:
        while sent < int(elapsed * rate):
            node, indication, frames = indications[turn % len(indications)]
            try:
                for request in decode_indication(indication, node, limits, time.monotonic()):
                    batcher.submit(request)
            except Exception:  # counted: a frame this check made should never be rejected
                rejected += frames
            sent += frames
            turn += 1
        await asyncio.sleep(0.0002)
    offered_s = time.monotonic() - start
    batcher.close()
    await server
    await asyncio.sleep(0.05)  # the last call_soon_threadsafe deliveries
    executor.shutdown()
    sink[2].close()
    sink[1].close()
    sink[0].term()
    lat = np.concatenate(latencies) if latencies else np.zeros(0)
    served = len(lat)
    return {
        "offered_frames_per_s": sent / offered_s, "frames_offered": sent, "decisions": served, "lost": sent - served,
        "rejected": rejected, "max_batch": batching.max_batch, "max_wait_ms": batching.max_wait_ms, "wire": wire,
        "p50_ms": float(np.percentile(lat, 50)) if served else None,
        "p99_ms": float(np.percentile(lat, 99)) if served else None,
        "p999_ms": float(np.percentile(lat, 99.9)) if served else None,
        "max_ms": float(lat.max()) if served else None,
        "zmq_messages_received": received[0],
    }


def e2e(encoder, table: TaskTable, descriptor, frames: list[Request], rate: float, seconds: float,
        settings: Sequence[tuple[str, int, float, str, int]]) -> dict:
    """One run per (engine kind, max_batch, max_wait_ms, publish wire, frames per Indication) setting,
    each `seconds` at `rate` frames/s."""
    shapes = frame_shapes(descriptor.enabled_tasks)
    limits = frame_limits(descriptor)  # the xApp's own checks; no sequence guard, so the frames can cycle
    from xapp.harness.hostbench import NODES, indications as random_indications  # needs pyzmq

    def feed(per_indication: int) -> list[tuple[str, object, int]]:
        made = random_indications(shapes, max(1, len(frames) // per_indication), frames=per_indication)
        return [(f"e2node-{i % NODES}", ind, per_indication) for i, ind in enumerate(made)]

    static = StaticGraphEngine(encoder, Metrics())
    runs = []
    try:
        for tokens in {encoder.cfg.tokens(*shape) for shape in shapes.values()}:
            static.prepare(table, tokens, max(s[1] for s in settings))  # no capture while serving
    except Exception as exc:  # the static runs then fail one by one; the eager one still runs
        runs.append({"engine": "static", "prepare_error": f"{type(exc).__name__}: {exc}"})
    engines = {"static": static, "eager": EarlyExitEngine(encoder, Metrics())}
    for kind, max_batch, max_wait_ms, wire, per_indication in settings:
        batching = BatchLimits(max_batch=max_batch, max_wait_ms=max_wait_ms, queue_limit=1 << 16)
        try:
            serve(engines[kind], table, chunks(frames, max_batch))
            result = {"engine": kind, "frames_per_indication": per_indication} | asyncio.run(
                offered_load(engines[kind], table, feed(per_indication), limits, batching, rate, seconds, wire))
        except Exception as exc:  # one setting failing leaves the others' numbers
            runs.append({"engine": kind, "max_batch": max_batch, "error": f"{type(exc).__name__}: {exc}"})
            continue
        runs.append(result)
        print(f"  {kind}, max_batch {max_batch}, max_wait {max_wait_ms} ms, wire {wire}, {per_indication} frames per "
              f"Indication: offered {result['offered_frames_per_s']:.0f}/s, p50 {result['p50_ms']} ms, "
              f"p99 {result['p99_ms']} ms, lost {result['lost']}", flush=True)
    return {"path": "E2SM-IQ Indication decode+validate -> batcher -> engine (bf16 on CUDA) -> decisions -> ZMQ publish, "
                    "in one process (no gRPC, no Redis)", "runs": runs}


# -- driver -----------------------------------------------------------------------------------

def write(path: str, report: dict) -> None:
    tmp = Path(path + ".tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(json.dumps(report, indent=1))
    os.replace(tmp, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--descriptor", default="descriptors/default.yaml")
    parser.add_argument("--device", default="cuda", help="cpu only to dry-run this script without a GPU")
    parser.add_argument("--batches", default=None, help=f"batch sizes (default {','.join(map(str, BATCHES))}; "
                                                         "32,64 with --quick)")
    parser.add_argument("--budget-s", type=float, default=140.0,
                        help="wall budget of the whole run; later batch sizes are skipped when it runs short")
    parser.add_argument("--rate", type=float, default=10_000.0, help="frames/s offered in the end-to-end check")
    parser.add_argument("--quick", action="store_true", help="few frames, short timings (a dry run)")
    parser.add_argument("--json", default="gpu_check.json")
    args = parser.parse_args()
    clock = Clock(args.budget_s, STARTED)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: these checks need a GPU (--device cpu for a dry run)")
    device = torch.device(args.device)
    batches = [int(b) for b in (args.batches or ("32,64" if args.quick else ",".join(map(str, BATCHES)))).split(",")]
    per_task, seconds, e2e_s = (16, 0.05, 0.5) if args.quick else (max(batches), 1.2, 3.0)
    rate = min(args.rate, 100.0) if args.quick else args.rate
    descriptor = load_descriptor(args.descriptor)
    cpu_encoder = load_encoder(descriptor.encoder.checkpoint, "cpu")
    encoder = load_encoder(descriptor.encoder.checkpoint, args.device)
    cpu_table, table = build_table(descriptor, cpu_encoder), build_table(descriptor, encoder)
    report: dict = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "torch": torch.__version__,
        "encoder": {"dim": encoder.cfg.dim, "depth": encoder.cfg.depth}, "exits": {t: p.exit for t, p in table.items()},
        "budget_s": args.budget_s, "quick": args.quick, "sections_s": {},
    }
    print(f"setup {clock.elapsed():.1f} s on {report['device']}", flush=True)
    frames = labelled_frames(list(table), per_task, seed=7)
    agreement_frames = frames[: 3 * min(per_task, 256)]
    sections: list[tuple[str, Callable[[], object]]] = [
        ("exit_states", lambda: exit_states(cpu_encoder, encoder)),
        ("bf16_decisions", lambda: bf16_decisions(
            cpu_table, table, {"eager": EarlyExitEngine(encoder, Metrics()), "static": StaticGraphEngine(encoder, Metrics())},
            EarlyExitEngine(cpu_encoder, Metrics()), agreement_frames, 32)),
        ("throughput", lambda: throughput(encoder, table, frames, batches, seconds, clock, reserve_s=4 * e2e_s + 10)),
        ("peak", lambda: peak(report.get("throughput") or [], device, args.quick)),
        ("e2e", lambda: e2e(encoder, table, descriptor, frames, rate, min(e2e_s, max(0.5, (clock.left() - 5) / 4)),
                            [("static", descriptor.batching.max_batch, descriptor.batching.max_wait_ms, "decision", 1),
                             ("static", 64, 0.25, "decision", 1), ("eager", 64, 0.25, "decision", 1),
                             ("static", 64, 0.25, "batch", 8)])),
    ]
    report["setup_s"] = clock.elapsed()
    for name, check in sections:
        start = time.perf_counter()
        try:
            report[name] = check()
        except Exception as exc:  # report every section, even when one breaks
            report[name] = {"error": f"{type(exc).__name__}: {exc}"}
        report["sections_s"][name] = time.perf_counter() - start
        report["elapsed_s"] = clock.elapsed()
        write(args.json, report)
        print(f"{name} ({report['sections_s'][name]:.1f} s, {clock.elapsed():.0f} s in): "
              f"{json.dumps(report[name])[:1500]}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
