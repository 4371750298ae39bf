"""`xapp demo`: the whole loop on one machine. An embedded real Redis and the xApp on the given
descriptor (ports moved to free ones, which it prints) in this process; 4 simulated E2 nodes and a
ZMQ listener in a child process (xapp.harness.loadgen), as they would be elsewhere in a RIC; then a
summary. Edits to the operator's descriptor reach the running xApp: each is validated as the xApp
will, then re-adapted into the copy the xApp watches."""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import json
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from xapp.app import AppError, Overrides, XApp
from xapp.config import DescriptorError, load_descriptor
from xapp.config.paths import descriptor_root, resolve_path
from xapp.harness import HarnessError
from xapp.harness.loadgen import LoadGenError, LoadGenerator, Received
from xapp.ops.http import READY
from xapp.ops.metrics import Metrics
from xapp.vocab import NodeEndpoint

NODES = 4


def adapt_descriptor(
    src: str | Path,
    dst: str | Path,
    *,
    nodes: Sequence[NodeEndpoint],
    zmq_endpoint: str,
    redis_url: str,
    http_port: int,
    edit: Callable[[dict], None] | None = None,
) -> Path:
    """Copy a descriptor to `dst` with its files made absolute and its endpoints replaced, so the
    copy runs anywhere (free ports, a private Redis) yet serves the same encoder, heads and policies."""
    src, dst = Path(src), Path(dst)
    doc = yaml.safe_load(src.read_text())
    root = descriptor_root(src)
    if doc["encoder"].get("checkpoint"):
        doc["encoder"]["checkpoint"] = str(resolve_path(root, doc["encoder"]["checkpoint"]))
    if doc.get("heads"):
        doc["heads"]["manifest"] = str(resolve_path(root, doc["heads"]["manifest"]))
    for task in doc["tasks"].values():
        for item in (task, *task.get("policy", {}).get("exits", [])):
            if "head" in item:
                item["head"] = str(resolve_path(root, item["head"]))
    doc["e2"]["nodes"] = [{"id": n.id, "address": n.address} for n in nodes]
    doc["publish"]["zmq"]["endpoint"] = zmq_endpoint
    doc["publish"]["redis"]["url"] = redis_url
    doc["ops"]["http_port"] = http_port
    if edit is not None:
        edit(doc)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
    os.replace(tmp, dst)  # the xApp's watcher never sees half a file
    return dst


@dataclass
class Tally:
    """What the listener saw, per task."""

    count: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    latency_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    gflops: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    exits: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))

    def add(self, r: Received) -> None:
        self.count[r.task] += 1
        self.latency_ms[r.task].append(r.latency_ms)
        self.gflops[r.task].append(r.gflops)
        self.exits[r.task].add(r.exit)



def summarize(tally: Tally, seconds: float, metrics: Metrics, full_gflops: float, redis_stats: dict) -> dict:
    tasks = {}
    all_lat = [x for v in tally.latency_ms.values() for x in v]
    for task in sorted(tally.count):
        lat = np.array(tally.latency_ms[task])
        correct = metrics.total("xapp_decisions_scored_total", task=task, outcome="correct")
        scored = correct + metrics.total("xapp_decisions_scored_total", task=task, outcome="wrong")
        tasks[task] = {
            "decisions": tally.count[task],
            "decisions_per_s": tally.count[task] / seconds,
            "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)),
            "exits": sorted(tally.exits[task]),
            "gflops_per_frame": float(np.mean(tally.gflops[task])),
            "accuracy_vs_sim_truth": correct / scored if scored else None,
        }
    all_gflops = [x for v in tally.gflops.values() for x in v]
    return {
        "seconds": seconds,
        "tasks": tasks,
        "latency_p50_ms": float(np.percentile(all_lat, 50)) if all_lat else None,
        "latency_p99_ms": float(np.percentile(all_lat, 99)) if all_lat else None,
        "gflops_per_frame": float(np.mean(all_gflops)) if all_gflops else None,
        "gflops_full_depth": full_gflops,
        "frames_in": metrics.total("xapp_frames_in_total"),
        "rejected": metrics.total("xapp_frames_rejected_total"),
        "shed": metrics.total("xapp_frames_shed_total"),
        "shed_by_reason": metrics.by_label("xapp_frames_shed_total", "reason"),
        "reconnects": metrics.total("xapp_e2_reconnects_total"),
        "controls_sent": metrics.total("xapp_e2_controls_total"),
        "stage_mean_ms": {
            stage: 1000 * metrics.total("xapp_stage_latency_seconds_sum", stage=stage)
            / max(1.0, metrics.total("xapp_stage_latency_seconds_count", stage=stage))
            for stage in ("queue", "compute", "indication_to_decision")
        },
        "mean_batch": metrics.total("xapp_batch_size_sum") / max(1.0, metrics.total("xapp_batch_size_count")),
        "redis": redis_stats,
    }


def format_summary(s: dict) -> str:
    lines = [f"xapp demo: {s['seconds']:.1f} s, {NODES} simulated E2 nodes", ""]
    lines.append(f"{'task':<14}{'dec/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'exit':>7}{'GFLOP/frame':>13}{'acc':>7}")
    for task, t in s["tasks"].items():
        acc = "-" if t["accuracy_vs_sim_truth"] is None else f"{t['accuracy_vs_sim_truth']:.2f}"
        exits = ",".join(map(str, t["exits"]))
        lines.append(f"{task:<14}{t['decisions_per_s']:>8.1f}{t['p50_ms']:>9.1f}{t['p99_ms']:>9.1f}{exits:>7}"
                     f"{t['gflops_per_frame']:>13.3f}{acc:>7}")
    if s["gflops_per_frame"]:
        lines.append("")
        lines.append(f"indication->decision latency: p50 {s['latency_p50_ms']:.1f} ms, p99 {s['latency_p99_ms']:.1f} ms")
        lines.append(f"FLOPs per frame: {s['gflops_per_frame']:.3f} GFLOP vs {s['gflops_full_depth']:.3f} at full depth "
                     f"({s['gflops_full_depth'] / s['gflops_per_frame']:.2f}x fewer)")
    reasons = ", ".join(f"{reason} {n:.0f}" for reason, n in sorted(s["shed_by_reason"].items()))
    lines.append(f"frames in {s['frames_in']:.0f}, rejected {s['rejected']:.0f}, shed {s['shed']:.0f}"
                 f"{f' ({reasons})' if reasons else ''}, reconnects {s['reconnects']:.0f}, "
                 f"E2 controls {s['controls_sent']:.0f}")
    st = s["stage_mean_ms"]
    lines.append(f"mean per stage: queue {st['queue']:.1f} ms, engine {st['compute']:.1f} ms per batch "
                 f"(mean batch {s['mean_batch']:.1f}), indication->decision {st['indication_to_decision']:.1f} ms")
    r = s["redis"]
    lines.append(f"redis: {r.get('hashes', 0)} latest-decision hashes, stream lengths {r.get('streams', {})}")
    return "\n".join(lines)


async def redis_stats(url: str, tasks: Sequence[str]) -> dict:
    import redis.asyncio as aioredis

    from xapp.publish.redis_pub import stream_key

    client = aioredis.Redis.from_url(url)
    try:
        hashes = len([k async for k in client.scan_iter(match="decision:*")])
        streams = {t: await client.xlen(stream_key(t)) for t in tasks}
    finally:
        await client.aclose()
    return {"hashes": hashes, "streams": streams}


@dataclass
class Embedded:
    app: XApp
    metrics: Metrics
    redis_url: str
    zmq_endpoint: str
    tasks: list[str]
    http_url: str
    readapt: Callable[[], Path]  # copy the operator's descriptor again into the one the xApp watches


def enabled_task_samples(descriptor: str | Path) -> dict[str, int]:
    """Samples per frame of each enabled task, as the xApp asks E2 nodes for them."""
    from xapp.engine.build import frame_shapes

    try:
        return {task: shape[1] for task, shape in frame_shapes(load_descriptor(descriptor).enabled_tasks).items()}
    except DescriptorError as exc:
        raise HarnessError(str(exc)) from None


@asynccontextmanager
async def embedded(descriptor: str | Path, threads: int | None, stop: asyncio.Event | None = None):
    """The xApp with a private Redis in this process (`embedded_app`), fed and listened to by NODES
    simulated E2 nodes in a child process (paused until `load.set_rate`); yields (env, load).
    Failures, the load process's included, surface as HarnessError."""
    from xapp.ops.redis_server import free_port

    zmq_endpoint = f"tcp://127.0.0.1:{free_port()}"
    try:
        samples = enabled_task_samples(descriptor)
        with LoadGenerator(NODES, list(samples), zmq_endpoint, samples=samples) as load:
            async with embedded_app(descriptor, load.endpoints, zmq_endpoint, threads, stop) as env:
                yield env, load
    except LoadGenError as exc:
        raise HarnessError(str(exc)) from None


@asynccontextmanager
async def embedded_app(descriptor: str | Path, nodes: Sequence[NodeEndpoint], zmq_endpoint: str,
                       threads: int | None, stop: asyncio.Event | None = None):
    """A private Redis and the xApp on a copy of the descriptor pointed at `nodes` and publishing on
    `zmq_endpoint` (other ports free ones); yields once the xApp is ready and tears both down on exit.
    Failures surface as HarnessError."""
    from xapp.ops.redis_server import RedisServer, RedisServerError, free_port

    with tempfile.TemporaryDirectory(prefix="xapp-") as tmp:
        redis = RedisServer(Path(tmp) / "redis")
        app_stop = asyncio.Event()
        app_task = None
        try:
            await asyncio.to_thread(redis.start)
            http_port = free_port()
            readapt = functools.partial(adapt_descriptor, descriptor, Path(tmp) / "descriptors" / "xapp.yaml", nodes=nodes,
                                        zmq_endpoint=zmq_endpoint, redis_url=redis.url, http_port=http_port)
            metrics = Metrics()
            app = XApp(load_descriptor(readapt()), metrics, Overrides(threads=threads, ops_host="127.0.0.1"))
            app_task = asyncio.create_task(app.run(app_stop))
            await _wait_ready(app, app_task, stop or asyncio.Event())
            yield Embedded(app, metrics, redis.url, zmq_endpoint, list(app.descriptor.enabled_tasks),
                           f"http://127.0.0.1:{http_port}", readapt)
        except (AppError, RedisServerError) as exc:
            raise HarnessError(str(exc)) from None
        finally:
            app_stop.set()
            if app_task is not None:
                await asyncio.gather(app_task, return_exceptions=True)
            await asyncio.to_thread(redis.stop)


async def demo(args: argparse.Namespace, stop: asyncio.Event) -> int:
    from xapp.model import exit_flops
    from xapp.ops.logging import configure

    configure("WARNING")  # JSON logs on stderr only for trouble; the summary goes to stdout
    if args.seconds < 0 or args.rate <= 0:
        raise HarnessError("--seconds must be >= 0 (0: until Ctrl-C) and --rate positive")
    print(f"starting redis, {NODES} simulated E2 nodes with a listener (child process) and the xApp ...", flush=True)
    async with embedded(args.descriptor, args.threads, stop) as (env, load):
        await asyncio.to_thread(load.record)
        await asyncio.to_thread(load.set_rate, args.rate)
        print(format_endpoints(env, args.descriptor), flush=True)
        print(f"xApp ready ({exits_of(env.app)}); serving "
              + ("until Ctrl-C" if args.seconds == 0 else f"for {args.seconds:.0f} s (Ctrl-C to stop early)") + " ...",
              flush=True)
        t0 = time.monotonic()
        follower = asyncio.create_task(follow_edits(Path(args.descriptor), env))
        try:
            await asyncio.wait_for(stop.wait(), args.seconds or None)
        except asyncio.TimeoutError:
            pass
        finally:
            follower.cancel()
        tally = Tally()
        for r in await asyncio.to_thread(load.collect):
            tally.add(r)
        seconds = time.monotonic() - t0
        await asyncio.to_thread(load.set_rate, 0.0)
        stats = await redis_stats(env.redis_url, env.tasks)
        # The encoder alone (heads are ~1e-5 of it), once per window of the frames decided
        windows = sum(n * env.app.table[t].windows for t, n in tally.count.items() if t in env.app.table)
        full = exit_flops(env.app.engine.encoder.cfg)[-1] / 1e9 * (windows / sum(tally.count.values()) if windows else 1.0)
    summary = summarize(tally, seconds, env.metrics, full, stats)
    print()
    print(format_summary(summary))
    if args.json_path:
        Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_path).write_text(json.dumps(summary, indent=2))
    return 0


def exits_of(app: XApp) -> str:
    exits = ", ".join(f"{task}@{plan.exit}" for task, plan in app.table.items())
    choice = app.engine_choice
    return exits if choice is None else f"{exits}; trunk on {choice.setting}, {choice.how}"


def format_endpoints(env: Embedded, descriptor: str | Path) -> str:
    """Where an operator attaches from another terminal."""
    return "\n".join([
        f"  descriptor  {Path(descriptor).absolute()}  (watched: edits apply live)",
        f"  ZMQ         {env.zmq_endpoint}  (xapp listen --endpoint {env.zmq_endpoint})",
        f"  Redis       {env.redis_url}",
        f"  HTTP        {env.http_url}/metrics, {env.http_url}{READY}  (xapp top --url {env.http_url})",
    ])


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


async def follow_edits(descriptor: Path, env: Embedded, interval_s: float = 0.5, apply_timeout_s: float = 10.0) -> None:
    """Until cancelled: when the operator's descriptor changes (and holds still for one poll, as the
    xApp's own watcher requires), validate it the way the xApp will and, if valid, re-adapt it into
    the copy the xApp watches; print what became of the edit."""
    seen, pending = _digest(descriptor), None
    while True:
        await asyncio.sleep(interval_s)
        digest = _digest(descriptor)
        if digest is None or digest == seen or digest != pending:
            pending = None if digest == seen else digest
            continue
        seen, pending = digest, None
        try:
            await asyncio.to_thread(load_descriptor, descriptor)
        except DescriptorError as exc:
            print(f"descriptor edit refused, the running one stays: {exc}", flush=True)
            continue
        outcomes = {o: env.metrics.total("xapp_descriptor_reloads_total", outcome=o) for o in ("applied", "rejected")}
        await asyncio.to_thread(env.readapt)
        end = time.monotonic() + apply_timeout_s
        while time.monotonic() < end:
            changed = [o for o, n in outcomes.items() if env.metrics.total("xapp_descriptor_reloads_total", outcome=o) > n]
            if changed:
                print(f"descriptor edit {changed[0]}: serving {exits_of(env.app)}", flush=True)
                break
            await asyncio.sleep(0.1)
        else:
            print("descriptor edit made no difference to what the xApp serves (endpoints are the demo's own)", flush=True)


async def _wait_ready(app: XApp, app_task: asyncio.Task, stop: asyncio.Event, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not app.ready():
        if app_task.done():
            app_task.result()  # raises what stopped the app
            raise AppError("xApp stopped before it was ready")
        if stop.is_set():
            raise AppError("interrupted before the xApp was ready")
        if time.monotonic() > end:
            raise AppError(f"xApp not ready after {timeout:.0f} s: no E2 subscription came up")
        await asyncio.sleep(0.05)
