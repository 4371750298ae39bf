"""`xapp bench`: what early exit buys, measured in one run on the same frames.

Offline: a naive deployment (one full-depth model per task: every frame runs all blocks, batched
with frames of its own task) against the shared-trunk early-exit engine (mixed batches, each task's
head at its exit). Both alternate within each repeat, so a busy machine slows both alike; a plain
matmul of the model's MLP shape is timed alongside as the machine's reference GFLOP/s.

Online: the xApp in this process with a real Redis, fed by simulated E2 nodes in a child process
(xapp.harness.loadgen) at offered loads that are fractions of the offline early-exit capacity;
indication-to-decision latency from the decisions the child receives on the ZMQ feed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import psutil
import torch

from xapp.engine.choose import REFERENCE, Setting, resolve, sample_requests
from xapp.engine.runner import EarlyExitEngine, TaskTable
from xapp.harness import HarnessError
from xapp.model import Encoder, exit_flops
from xapp.model.heads import read_head
from xapp.model.precision import device_autocast
from xapp.ops.metrics import Metrics
from xapp.vocab import Request

if TYPE_CHECKING:
    from xapp.harness.demo import Embedded

REPEATS = 3
WARMUP_S = 1.5
DRAIN_TIMEOUT_S = 30.0


def thread_cpu_seconds(process: psutil.Process) -> dict[str, float]:
    """CPU seconds of this process's threads so far: the event loop ("MainThread"), the engine's worker
    ("engine_0"), the engine's side-feature thread ("side_0"), and the rest (gRPC's poller, ZMQ's I/O,
    ...) summed as "other"."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for t in process.threads():
        name = names.get(t.id, "other")
        out[name] = out.get(name, 0.0) + t.user_time + t.system_time
    return out


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


async def drained(metrics: Metrics, poll_s: float = 0.3, timeout_s: float = DRAIN_TIMEOUT_S) -> None:
    """Wait until the nodes are quiet: no frame arrived in the last `poll_s` (what an overload left in
    the gRPC streams has been read) and the batcher's queue is empty; at most `timeout_s`."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    arrived = metrics.total("xapp_frames_in_total")
    while loop.time() < end:
        await asyncio.sleep(poll_s)
        now = metrics.total("xapp_frames_in_total")
        if now == arrived and metrics.total("xapp_batch_queue_depth") == 0:
            return
        arrived = now


def _batches(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _naive(encoder: Encoder, table: TaskTable, frames: list[Request], max_batch: int) -> float:
    depth = encoder.cfg.depth
    device = next(encoder.parameters()).device
    start = time.perf_counter()
    with torch.inference_mode(), device_autocast(device):
        for task, plan in table.items():
            head = plan.heads[plan.exit]  # same cost as a head on the last block
            for batch in _batches([r for r in frames if r.task == task], max_batch):
                x = torch.from_numpy(np.stack([r.frame for r in batch])).to(device)
                read_head(head, encoder(x, [depth])[depth], x).argmax(-1).tolist()
    return time.perf_counter() - start


def early_exit_pass(engine: EarlyExitEngine, table: TaskTable, frames: list[Request], max_batch: int) -> tuple[float, list]:
    decisions: list = []
    start = time.perf_counter()
    for batch in _batches(frames, max_batch):
        engine.run(batch, table, decisions.extend)
    return time.perf_counter() - start, decisions


def matmul_gflops(rows: int, dim: int, hidden: int, seconds: float = 0.5) -> float:
    a, b = torch.randn(rows, dim), torch.randn(dim, hidden)
    a @ b
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        n += 1
    return 2.0 * rows * dim * hidden * n / (time.perf_counter() - start) / 1e9


def offline(encoder: Encoder, table: TaskTable, frames: list[Request], max_batch: int, side_thread: bool = False,
            setting: Setting = REFERENCE) -> dict:
    """Naive against early exit, both torch fp32 on one thread (the speed-up); early exit at the served
    `setting` (runtime and precision) on one thread, the capacity the online loads are fractions of
    (the same engine when the setting is torch fp32); with `side_thread`, early exit also as `xapp run`
    serves it, at `setting` with its side features on a second thread (online that core is shared with
    the event loop and the load, so it is not the online capacity)."""
    engine = EarlyExitEngine(encoder, Metrics())
    configured = engine if setting == REFERENCE else EarlyExitEngine(encoder, Metrics(), setting.precision,
                                                                      runtime=setting.runtime)
    served = EarlyExitEngine(encoder, Metrics(), setting.precision, side_thread=True,
                             runtime=setting.runtime) if side_thread else None
    others = [e for e in (configured, served) if e is not None and e is not engine]
    cfg = encoder.cfg
    tokens = cfg.tokens(*frames[0].frame.shape)
    warm = frames[: max_batch * 2]
    _naive(encoder, table, warm, max_batch)
    for e in (engine, *others):
        early_exit_pass(e, table, warm, max_batch)
    # Naive and early exit take turns chunk by chunk (max_batch frames of every task), so that a
    # machine whose load changes during the run slows both alike.
    chunks = _batches(frames, max_batch * len(table))
    naive_seconds, early_exit_seconds, matmul_rates = [], [], []
    other_seconds: list[list[float]] = [[] for _ in others]
    for _ in range(REPEATS):
        naive_t = early_exit_t = 0.0
        other_t = [0.0] * len(others)
        decisions = []
        for chunk in chunks:
            naive_t += _naive(encoder, table, chunk, max_batch)
            t, released = early_exit_pass(engine, table, chunk, max_batch)
            early_exit_t += t
            decisions += released
            for i, other in enumerate(others):
                other_t[i] += early_exit_pass(other, table, chunk, max_batch)[0]
        naive_seconds.append(naive_t)
        early_exit_seconds.append(early_exit_t)
        for i, t in enumerate(other_t):
            other_seconds[i].append(t)
        matmul_rates.append(matmul_gflops(max_batch * tokens, cfg.dim, int(cfg.dim * cfg.mlp_ratio)))
    n = len(frames)
    naive_gflops = float(np.mean([
        exit_flops(cfg, tokens)[-1] + table[r.task].heads[table[r.task].exit].flops(tokens)
        for r in frames
    ])) / 1e9
    early_exit_gflops = float(np.mean([d.gflops for d in decisions]))
    naive_fps, early_exit_fps = n / statistics.median(naive_seconds), n / statistics.median(early_exit_seconds)
    rates = [n / statistics.median(s) for s in other_seconds]
    capacity = rates[0] if configured is not engine else early_exit_fps  # `configured` leads `others` when apart
    ratios = [a / b for a, b in zip(naive_seconds, early_exit_seconds)]
    accuracy = float(np.mean([d.label == d.truth for d in decisions]))
    for e in others:
        e.close()
    return {
        "frames": n,
        "max_batch": max_batch,
        "naive_frames_per_s": naive_fps,
        "early_exit_frames_per_s": early_exit_fps,
        "setting": {"runtime": setting.runtime, "precision": setting.precision},
        "capacity_frames_per_s": capacity,
        "served_side_thread": served is not None,
        "served_frames_per_s": rates[-1] if served is not None else capacity,
        "speedup_measured": statistics.median(ratios),
        "speedup_per_repeat": ratios,
        "gflops_per_frame_naive": naive_gflops,
        "gflops_per_frame_early_exit": early_exit_gflops,
        "flop_ratio": naive_gflops / early_exit_gflops,
        "achieved_gflops_per_s_naive": naive_fps * naive_gflops,
        "achieved_gflops_per_s_early_exit": early_exit_fps * early_exit_gflops,
        "matmul_gflops_per_s": statistics.median(matmul_rates),
        "early_exit_batch_ms": 1000.0 * max_batch / early_exit_fps,
        "early_exit_accuracy": accuracy,
        "exits": {t: p.exit for t, p in table.items()},
    }


async def online(descriptor_path: Path, levels: Sequence[tuple], seconds: float, threads: int | None,
                 on_ready: Callable[[Embedded], None] | None = None) -> list[dict]:
    """One row per level (load percent or None, offered frames/s[, frames per Indication]), each held
    `seconds`; `on_ready` sees the xApp once it is up, before any load."""
    from xapp.harness.demo import NODES, embedded

    process = psutil.Process()
    results = []
    async with embedded(descriptor_path, threads) as (env, load):
        load_process = psutil.Process(load.pid)
        if on_ready is not None:
            on_ready(env)
        peak = [process.memory_info().rss]

        async def sample_rss() -> None:
            while True:
                peak[0] = max(peak[0], process.memory_info().rss)
                await asyncio.sleep(0.1)

        sampler = asyncio.create_task(sample_rss())
        try:
            for level, offered, *frames in levels:
                if frames:
                    await asyncio.to_thread(load.set_frames_per_indication, frames[0])
                await asyncio.to_thread(load.set_rate, offered / NODES)
                await asyncio.sleep(WARMUP_S)
                shed0 = env.metrics.total("xapp_frames_shed_total")
                in0 = env.metrics.total("xapp_frames_in_total")
                published0 = {sink: env.metrics.total("xapp_published_total", sink=sink) for sink in ("zmq", "redis")}
                batches0 = [env.metrics.total(f"xapp_batch_size_{part}") for part in ("count", "sum")]
                threads0 = thread_cpu_seconds(process)
                rss0, peak[0] = process.memory_info().rss, 0
                await asyncio.to_thread(load.record)
                cpu0, load_cpu0, t0 = sum(process.cpu_times()[:2]), sum(load_process.cpu_times()[:2]), time.monotonic()
                await asyncio.sleep(seconds)
                sent = await asyncio.to_thread(load.sent)
                lat = np.array([r.latency_ms for r in await asyncio.to_thread(load.collect)])
                t1 = time.monotonic()
                results.append({
                    "load_percent": level,
                    "offered_frames_per_s": offered,
                    "frames_per_indication": frames[0] if frames else 1,
                    "sent_frames_per_s": sent / (t1 - t0),  # what the simulated nodes' pacing achieved
                    "frames_in_per_s": (env.metrics.total("xapp_frames_in_total") - in0) / (t1 - t0),
                    "decisions_per_s": len(lat) / (t1 - t0),
                    # The xApp's own count of what it sent, beside what the listener received.
                    **{f"published_{sink}_per_s": (env.metrics.total("xapp_published_total", sink=sink) - n) / (t1 - t0)
                       for sink, n in published0.items()},
                    "xapp_cpu_percent": 100.0 * (sum(process.cpu_times()[:2]) - cpu0) / (t1 - t0),
                    # The simulated nodes and the listener: a saturated load process limits what is sent.
                    "load_cpu_percent": 100.0 * (sum(load_process.cpu_times()[:2]) - load_cpu0) / (t1 - t0),
                    # Per thread: whether the event loop or the engine, each bound to one core by the
                    # GIL, is what saturates.
                    "thread_cpu_percent": {name: 100.0 * (cpu - threads0.get(name, 0.0)) / (t1 - t0)
                                           for name, cpu in thread_cpu_seconds(process).items()},
                    "mean_batch": _ratio(env.metrics.total("xapp_batch_size_sum") - batches0[1],
                                         env.metrics.total("xapp_batch_size_count") - batches0[0]),
                    "p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
                    "p99_ms": float(np.percentile(lat, 99)) if len(lat) else None,
                    "p999_ms": float(np.percentile(lat, 99.9)) if len(lat) else None,
                    "shed": env.metrics.total("xapp_frames_shed_total") - shed0,
                    "rss_start_mb": rss0 / 2**20,
                    "rss_end_mb": process.memory_info().rss / 2**20,
                    "peak_rss_mb": max(peak[0], rss0) / 2**20,
                })
                print(_online_row(results[-1]), flush=True)
                await asyncio.to_thread(load.set_rate, 0.0)
                await drained(env.metrics)  # an overloaded level leaves no backlog to the next
        finally:
            sampler.cancel()
    return results


ONLINE_HEADER = (f"{'load':>6}{'offered/s':>10}{'sent/s':>10}{'in/s':>10}{'zmq out/s':>10}{'dec/s':>10}{'p50 ms':>9}"
                 f"{'p99 ms':>9}{'p999 ms':>9}{'shed':>8}{'peak MB':>10}{'cpu %':>8}{'loop %':>8}{'engine %':>9}{'side %':>8}{'load %':>8}")


def _online_row(r: dict) -> str:
    def ms(v):
        return "-" if v is None else f"{v:.1f}"

    level = f"{r['load_percent']:.0f}%" if r["load_percent"] is not None else f"{r.get('frames_per_indication', 1)}/ind"
    return (f"{level:>6}{r['offered_frames_per_s']:>10.1f}{r['sent_frames_per_s']:>10.1f}{r['frames_in_per_s']:>10.1f}"
            f"{r['published_zmq_per_s']:>10.1f}{r['decisions_per_s']:>10.1f}"
            f"{ms(r['p50_ms']):>9}{ms(r['p99_ms']):>9}{ms(r['p999_ms']):>9}{r['shed']:>8.0f}{r['peak_rss_mb']:>10.0f}"
            f"{r['xapp_cpu_percent']:>8.0f}"
            f"{r['thread_cpu_percent'].get('MainThread', 0.0):>8.0f}{r['thread_cpu_percent'].get('engine_0', 0.0):>9.0f}"
            f"{r['thread_cpu_percent'].get('side_0', 0.0):>8.0f}{r['load_cpu_percent']:>8.0f}")


def targets(offline_result: dict, online_rows: list[dict], max_wait_ms: float) -> list[tuple[str, bool, str]]:
    out = []
    need = 0.8 * offline_result["flop_ratio"]
    out.append(("speed-up >= 80% of FLOP ratio", offline_result["speedup_measured"] >= need,
                f"{offline_result['speedup_measured']:.2f}x vs {need:.2f}x needed"))
    by_load = {r["load_percent"]: r for r in online_rows}
    if 50 in by_load:
        r = by_load[50]
        ok = r["p99_ms"] is not None and r["p99_ms"] < 20 and r["shed"] == 0
        out.append(("50% load: p99 < 20 ms, zero sheds", ok, f"p99 {r['p99_ms']} ms, {r['shed']:.0f} shed"))
    if 150 in by_load:
        r = by_load[150]
        bound = max_wait_ms + 2 * 1000.0 * offline_result["max_batch"] / offline_result["capacity_frames_per_s"]
        growth = r["rss_end_mb"] - r["rss_start_mb"]
        ok = r["shed"] > 0 and r["p99_ms"] is not None and r["p99_ms"] <= bound and growth < 50
        out.append(("150% load: sheds counted, memory flat, p99 <= max_wait + 2 batch times", ok,
                    f"{r['shed']:.0f} shed, RSS {growth:+.0f} MB over the level, p99 {r['p99_ms']} ms vs {bound:.0f} ms"))
    return out


def format_bench_table(offline_result: dict, online_rows: list[dict], checks: list[tuple[str, bool, str]]) -> str:
    served = str(Setting(**offline_result["setting"]))
    lines = ["offline (same frames, batch %d, exits %s)" % (offline_result["max_batch"], offline_result["exits"]),
             "naive = one full-depth model per task, each frame through its task's model, batched per task",
             f"{'':<24}{'frames/s':>10}{'GFLOP/frame':>13}{'GFLOP/s':>10}",
             f"{'naive (full depth)':<24}{offline_result['naive_frames_per_s']:>10.1f}"
             f"{offline_result['gflops_per_frame_naive']:>13.3f}{offline_result['achieved_gflops_per_s_naive']:>10.1f}",
             f"{'shared-trunk early exit':<24}{offline_result['early_exit_frames_per_s']:>10.1f}"
             f"{offline_result['gflops_per_frame_early_exit']:>13.3f}{offline_result['achieved_gflops_per_s_early_exit']:>10.1f}",
             *([f"{'  at ' + served:<24}{offline_result['capacity_frames_per_s']:>10.1f}"] if served != str(REFERENCE) else []),
             *([f"{'  as served (side thread)':<24}{offline_result['served_frames_per_s']:>10.1f}"]
               if offline_result.get("served_side_thread") else []),
             f"{'matmul (MLP shape)':<24}{'':>10}{'':>13}{offline_result['matmul_gflops_per_s']:>10.1f}",
             f"speed-up measured {offline_result['speedup_measured']:.2f}x (per repeat "
             + ", ".join(f"{x:.2f}" for x in offline_result["speedup_per_repeat"])
             + f"), FLOP ratio {offline_result['flop_ratio']:.2f}x, "
               f"early-exit accuracy {offline_result['early_exit_accuracy']:.3f}",
             ""]
    if online_rows:
        lines.append("online (xApp in this process, real Redis; simulated E2 nodes and listener in a child process)")
        lines.append(ONLINE_HEADER)
        lines.extend(_online_row(r) for r in online_rows)
        lines.append("")
    for name, ok, detail in checks:
        lines.append(f"[{'PASS' if ok else 'MISS'}] {name}: {detail}")
    return "\n".join(lines)


def bench(args: argparse.Namespace) -> int:
    from xapp.engine.build import DeviceError, build_table, engine_threads, resolve_device, side_thread
    from xapp.config import DescriptorError, load_descriptor
    from xapp.engine.precision import PrecisionError
    from xapp.engine.runner import PlanError
    from xapp.model import WeightsFileError, load_encoder
    from xapp.ops.logging import configure

    configure("WARNING")
    try:
        loads = [float(x) for x in args.loads.split(",") if x.strip()]
        descriptor = load_descriptor(args.descriptor)
        device = resolve_device(descriptor.encoder.device)
        encoder = load_encoder(descriptor.encoder.checkpoint, str(device))
        table = build_table(descriptor, encoder)
    except ValueError:
        raise HarnessError(f"--loads: expected comma-separated percentages, got {args.loads!r}") from None
    except (DescriptorError, DeviceError, PlanError, WeightsFileError) as exc:
        raise HarnessError(str(exc)) from None
    torch.set_num_threads(engine_threads(args.threads))
    if args.host:
        return host_bench(descriptor, encoder, table, args)
    if args.precision:
        return precision_bench(descriptor, encoder, table, args)
    if args.ingest:
        return ingest_bench(descriptor, encoder, table, args)
    choice = resolve(descriptor, encoder, table)  # before the xApp starts, which then reads it from the cache
    frames = sample_requests(list(table), args.frames)
    print(f"offline: {len(frames)} frames, {torch.get_num_threads()} torch threads, {REPEATS} repeats, "
          f"served at {choice.setting} ({choice.how}) ...", flush=True)
    try:
        offline_result = offline(encoder, table, frames, descriptor.batching.max_batch, side_thread(device), choice.setting)
    except PrecisionError as exc:
        raise HarnessError(str(exc)) from None
    online_rows: list[dict] = []
    if loads and args.seconds > 0:
        capacity = offline_result["capacity_frames_per_s"]
        print(f"online: capacity {capacity:.1f} frames/s; loads {loads} % for {args.seconds:.0f} s each", flush=True)
        levels = [(level, capacity * level / 100.0) for level in loads]
        online_rows = asyncio.run(online(Path(args.descriptor), levels, args.seconds, args.threads))
    checks = targets(offline_result, online_rows, descriptor.batching.max_wait_ms)
    print()
    print(format_bench_table(offline_result, online_rows, checks))
    result = {"offline": offline_result, "online": online_rows,
              "targets": [{"name": name, "met": met, "detail": detail} for name, met, detail in checks],
              "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "load_average": os.getloadavg()}
    _write_json(args.json_path, result)
    return 0


def host_bench(descriptor, encoder: Encoder, table: TaskTable, args: argparse.Namespace) -> int:
    """The descriptor's tasks and exits on a trivial trunk: host microseconds per frame by stage."""
    from xapp.data import TASKS
    from xapp.harness.hostbench import format_host_table, measure, trivial_encoder, trivial_table

    torch.set_num_threads(1)  # host work is timed as this thread's CPU time, so torch must run in it
    small = trivial_encoder(encoder.cfg)
    small_table = trivial_table(small, {t: p.exit for t, p in table.items()}, {t: p.classes for t, p in table.items()})
    frames = max(1024, args.frames * len(table))
    print(f"host path: {frames} frames, {torch.get_num_threads()} torch threads ...", flush=True)
    # Frames of the heads' own shape: the host path per window, whatever `windows` the descriptor sets
    host = measure(small, small_table, {t: tuple(TASKS[t].frame_shape) for t in descriptor.enabled_tasks}, frames)
    print(format_host_table(host))
    result = {"host_us_per_frame": host, "frames": frames, "exits": {t: p.exit for t, p in table.items()},
              "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "load_average": os.getloadavg()}
    _write_json(args.json_path, result)
    return 0


def precision_bench(descriptor, encoder: Encoder, table: TaskTable, args: argparse.Namespace) -> int:
    from xapp.harness.precisionbench import format_precision_table, measure

    frames = sample_requests(list(table), args.frames, splits=test_splits(descriptor, table) if args.test_split else None)
    print(f"precision: {len(frames)} frames" + (" of the heads' test split" if args.test_split else "")
          + f", {torch.get_num_threads()} torch threads ...", flush=True)
    agreement = descriptor.encoder.min_agreement
    result = measure(encoder, table, frames, descriptor.batching.max_batch, agreement)
    result |= {"frames_from": "heads' test split" if args.test_split else "bench seed",
               "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "load_average": os.getloadavg()}
    print(format_precision_table(result))
    chosen = result["chosen"]
    print(f"fastest with >= {100 * agreement:g} % agreement (95 % confidence): "
          f"encoder: {{runtime: {chosen['runtime']}, precision: {chosen['precision']}}}")
    _write_json(args.json_path, result)
    return 0


def test_splits(descriptor, table: TaskTable) -> dict[str, tuple[int, int]]:
    """(size, seed) of each task's test split in the descriptor's heads manifest (what its accuracies
    were measured on); raises HarnessError for a task the manifest has no split of."""
    from xapp.config.manifest import ManifestError, read_manifest

    try:
        manifest = read_manifest(descriptor.heads_manifest) if descriptor.heads_manifest else {}
    except ManifestError as exc:
        raise HarnessError(f"--test-split: {exc}") from None
    splits = {}
    for task in table:
        try:
            split = manifest["tasks"][task]["splits"]["test"]
            splits[task] = int(split["n"]), int(split["seed"])
        except (KeyError, TypeError):
            raise HarnessError(f"--test-split: the heads manifest ({descriptor.heads_manifest}) has no test split "
                               f"of {task}") from None
    return splits


def ingest_bench(descriptor, encoder: Encoder, table: TaskTable, args: argparse.Namespace) -> int:
    from xapp.harness.ingest import ingest

    try:
        rates = [float(x) for x in args.ingest.split(",") if x.strip()]
    except ValueError:
        raise HarnessError(f"--ingest: expected comma-separated frames/s, got {args.ingest!r}") from None
    try:
        frames = [int(x) for x in args.frames_per_indication.split(",") if x.strip()]
    except ValueError:
        frames = []
    if not frames or min(frames) < 1:
        raise HarnessError(f"--frames-per-indication: expected comma-separated counts >= 1, got {args.frames_per_indication!r}")
    print(f"ingest: {args.ingest_trunk} trunk, offered {rates} frames/s for {args.seconds:.0f} s each, "
          f"{frames} frame(s) per Indication taking turns at each rate", flush=True)
    print(ONLINE_HEADER, flush=True)
    result = asyncio.run(ingest(descriptor, encoder, {t: p.classes for t, p in table.items()}, rates, args.seconds,
                                args.threads, frames, args.ingest_trunk))
    result |= {"cpu_count": os.cpu_count(), "load_average": os.getloadavg()}
    for count, rate in result["ceiling_by_frames_per_indication"].items():
        print(f"ingest ceiling, {count} frame(s) per Indication: {rate:.0f} frames/s "
              "(highest offer served in full, nothing shed)")
    _write_json(args.json_path, result)
    return 0


def _write_json(path: str, result: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(result, indent=2))
    print(f"\nJSON: {path}")
