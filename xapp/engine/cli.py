"""`xapp run | listen | top | demo | bench`: the serving side of the command line."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path

SHIPPED_DESCRIPTOR = "the shipped descriptors/default.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("run", help="run the xApp on a descriptor",
                              description="Subscribe to the descriptor's E2 nodes and serve decisions until Ctrl-C/SIGTERM.")
    p.add_argument("--descriptor", help=f"xApp descriptor (default: $CONFIG_FILE, else {SHIPPED_DESCRIPTOR})")
    p.add_argument("--shard-index", type=int, help="this replica's shard (default: $XAPP_SHARD_INDEX or pod ordinal)")
    p.add_argument("--shard-count", type=int, help="number of replicas splitting the E2 nodes (default: $XAPP_SHARD_COUNT or 1)")
    p.add_argument("--threads", type=int, help="torch threads for the engine (default: all cores but one)")
    p.set_defaults(handler=run_xapp)

    p = subparsers.add_parser("listen", help="print decisions as a control loop receives them",
                              description="Subscribe to the xApp's ZMQ decision feed and print each decision.")
    p.add_argument("--task", action="append", default=[], help="task to follow (repeatable; default: all)")
    p.add_argument("--endpoint", default="tcp://127.0.0.1:5560", help="the xApp's ZMQ PUB endpoint (default: %(default)s)")
    p.add_argument("--count", type=int, default=0, help="exit after this many decisions (default: run until Ctrl-C)")
    p.add_argument("--curve-server-key", help="CURVE: the xApp's public certificate file (zmq.auth format)")
    p.add_argument("--curve-client-key", help="CURVE: this subscriber's secret certificate file (zmq.auth format)")
    p.set_defaults(handler=run_listen)

    p = subparsers.add_parser("top", help="live terminal view of a running xApp (per task and per node)",
                              description="Refresh per-task decisions/s, p50/p99, exit, rejects and sheds, and each E2 "
                                          "node's stream state, from the xApp's /metrics and readiness endpoints.")
    p.add_argument("--url", default="http://127.0.0.1:8080", help="the xApp's ops HTTP address (default: %(default)s)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes (default: %(default)s)")
    p.add_argument("--count", type=int, default=0, help="exit after this many refreshes (default: until Ctrl-C)")
    p.set_defaults(handler=run_top)

    p = subparsers.add_parser("demo", help="embedded Redis + 4 simulated E2 nodes + the xApp + a listener",
                              description="Run the whole loop on this machine and print a summary.")
    p.add_argument("--seconds", type=float, default=20.0, help="how long to run; 0: until Ctrl-C (default: %(default)s)")
    p.add_argument("--descriptor", help=f"descriptor to serve and watch for edits (default: $CONFIG_FILE, else {SHIPPED_DESCRIPTOR})")
    p.add_argument("--rate", type=float, default=10.0, help="Indications per second per node (default: %(default)s)")
    p.add_argument("--threads", type=int, help="torch threads for the engine (default: all cores but one)")
    p.add_argument("--json", dest="json_path", help="also write the summary as JSON here")
    p.set_defaults(handler=run_demo)

    p = subparsers.add_parser("bench", help="offline and online engine benchmark",
                              description="Naive full-depth serving vs shared-trunk early exit on the same frames, "
                                          "then simulated nodes at 25/50/100/150 %% of measured capacity.")
    p.add_argument("--descriptor", help=f"descriptor whose tasks/exits/batching to use (default: $CONFIG_FILE, else {SHIPPED_DESCRIPTOR})")
    p.add_argument("--frames", type=int, default=96, help="frames per task in the offline set (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=8.0, help="seconds per online load level (default: %(default)s)")
    p.add_argument("--loads", default="25,50,100,150", help="online loads in %% of capacity (default: %(default)s)")
    p.add_argument("--threads", type=int, help="torch threads (default: all cores but one)")
    p.add_argument("--json", dest="json_path", default="runs/bench.json", help="JSON output (default: %(default)s)")
    p.add_argument("--host", action="store_true",
                   help="host path only: microseconds per frame by stage at batch 1/32/256/512, trivial trunk")
    p.add_argument("--precision", action="store_true",
                   help="engine fp32 / int8 / bf16 and ONNX Runtime fp32 / int8 side by side: frames/s, agreement, accuracy")
    p.add_argument("--ingest", metavar="RATES",
                   help="end-to-end ingest ceiling: offered frames/s to try, comma-separated (trivial trunk)")
    p.set_defaults(handler=run_bench)


def run_xapp(args: argparse.Namespace) -> int:
    from xapp.app import AppError, Overrides, XApp
    from xapp.cli import CliError
    from xapp.config import DescriptorError, Shard, ShardError, load_descriptor, shard_from_env
    from xapp.ops.logging import configure
    from xapp.ops.metrics import Metrics

    path = descriptor_argument(args.descriptor)
    try:
        descriptor = load_descriptor(path)
        if args.shard_count is not None or args.shard_index is not None:
            shard = Shard(args.shard_index or 0, args.shard_count or 1)
        else:
            shard = shard_from_env()
    except (DescriptorError, ShardError) as exc:
        raise CliError(str(exc)) from None
    configure(descriptor.ops.log_level)
    app = XApp(descriptor, Metrics(), Overrides(shard=shard, threads=args.threads))
    try:
        asyncio.run(_until_signal(app.run))
    except AppError as exc:
        raise CliError(str(exc)) from None
    return 0


def run_listen(args: argparse.Namespace) -> int:
    from xapp.cli import CliError
    from xapp.publish.listen import CurveClient, DecisionListener

    curve = None
    if (args.curve_server_key is None) != (args.curve_client_key is None):
        raise CliError("give both --curve-server-key and --curve-client-key, or neither")
    if args.curve_server_key is not None:
        try:
            curve = CurveClient.from_files(args.curve_server_key, args.curve_client_key)
        except (OSError, ValueError) as exc:
            raise CliError(f"CURVE keys: {exc}") from None

    async def listen(stop: asyncio.Event) -> None:
        listener = DecisionListener(args.endpoint, args.task, curve=curve)
        stopped = asyncio.ensure_future(stop.wait())
        beams: dict[str, str] = {}
        seen = 0
        try:
            while not args.count or seen < args.count:
                recv = asyncio.ensure_future(listener.recv())
                await asyncio.wait({recv, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if not recv.done():
                    recv.cancel()
                    break
                topic, d = recv.result()
                seen += 1
                latency_ms = (d.t_decision_ns - d.t_indication_ns) / 1e6
                print(f"{topic:<26} seq={d.sequence_number:<7} {d.label:<12} conf={d.confidence:.2f} "
                      f"exit={d.exit_layer} {d.gflops:.3f} GFLOP {latency_ms:6.1f} ms", flush=True)
                # What a control loop would act on: the serving beam of a node changing.
                if d.task == "beam" and beams.get(d.node_id) != d.label:
                    if d.node_id in beams:
                        print(f"  -> {d.node_id}: switch beam {beams[d.node_id]} -> {d.label}", flush=True)
                    beams[d.node_id] = d.label
        finally:
            stopped.cancel()
            listener.close()

    asyncio.run(_until_signal(listen))
    return 0


def run_top(args: argparse.Namespace) -> int:
    from xapp.cli import CliError
    from xapp.ops.top import TopError, render, scrape

    if args.interval <= 0 or args.count < 0:
        raise CliError("--interval must be positive and --count >= 0")
    clear = sys.stdout.isatty()  # a terminal gets one screen redrawn; a pipe gets one frame after another
    try:
        before, shown = scrape(args.url), 0
        while not args.count or shown < args.count:
            time.sleep(args.interval)
            now = scrape(args.url)
            print(("\x1b[H\x1b[2J" if clear else "\n" if shown else "") + render(now, before, args.url), flush=True)
            before, shown = now, shown + 1
    except TopError as exc:
        raise CliError(str(exc)) from None
    return 0


def descriptor_argument(value: str | None) -> Path:
    """--descriptor as given, else $CONFIG_FILE, else the shipped default (found from any directory)."""
    from xapp.config import descriptor_path_from_env
    from xapp.config.shipped import default_descriptor

    return Path(value) if value else descriptor_path_from_env(default_descriptor())


def run_demo(args: argparse.Namespace) -> int:
    from xapp.engine.demo import demo

    args.descriptor = descriptor_argument(args.descriptor)
    return asyncio.run(_until_signal(lambda stop: demo(args, stop)))


def run_bench(args: argparse.Namespace) -> int:
    from xapp.engine.bench import bench

    args.descriptor = descriptor_argument(args.descriptor)
    return bench(args)


async def _until_signal(main):
    """Run `main(stop)` with SIGINT/SIGTERM setting `stop`, so that shutdown is orderly."""
    stop = asyncio.Event()
    with _signals(asyncio.get_running_loop(), stop):
        return await main(stop)


@contextmanager
def _signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event):
    sigs = (signal.SIGINT, signal.SIGTERM)
    for sig in sigs:
        loop.add_signal_handler(sig, stop.set)
    try:
        yield
    finally:
        for sig in sigs:
            loop.remove_signal_handler(sig)
