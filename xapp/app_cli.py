"""`xapp run | listen | top`: run the xApp, and watch a running one as a control loop or an operator does."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from xapp.config.shipped import DESCRIPTOR_HELP


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("run", help="run the xApp on a descriptor",
                              description="Subscribe to the descriptor's E2 nodes and serve decisions until Ctrl-C/SIGTERM.")
    p.add_argument("--descriptor", help=f"xApp descriptor ({DESCRIPTOR_HELP})")
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


def run_xapp(args: argparse.Namespace) -> int:
    from xapp.app import AppError, Overrides, XApp
    from xapp.cli_error import CliError
    from xapp.config import DescriptorError, Shard, ShardError, load_descriptor, shard_from_env
    from xapp.config.shipped import descriptor_argument
    from xapp.ops.logging import configure
    from xapp.ops.metrics import Metrics
    from xapp.ops.signals import until_signal

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
        asyncio.run(until_signal(app.run))
    except AppError as exc:
        raise CliError(str(exc)) from None
    return 0


def run_listen(args: argparse.Namespace) -> int:
    from xapp.cli_error import CliError
    from xapp.ops.signals import until_signal
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

    asyncio.run(until_signal(listen))
    return 0


def run_top(args: argparse.Namespace) -> int:
    from xapp.cli_error import CliError
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
