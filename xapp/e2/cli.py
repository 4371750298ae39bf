"""`xapp e2sim`: serve simulated E2 nodes until Ctrl-C, taking fault-injection commands on stdin."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import stat
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xapp.e2.sim import SimulatedNode, SimulatedNodes
    from xapp.e2.tls import ServerTls

COMMANDS = """commands on stdin (NODE is a node id or "all"):
  drop NODE               abort the node's active streams (status UNAVAILABLE)
  end NODE                end the node's active streams cleanly
  restart NODE [SECONDS]  stop, stay down SECONDS (default 0), serve again on the same port
  stop NODE | start NODE
  malformed NODE KIND[,KIND...]   send malformed frames between good ones (length, nan, ...)
  rate HZ [NODE]          change the Indication rate
  status                  one line per node
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "e2sim",
        help="serve simulated E2 nodes that stream I/Q frames over gRPC",
        description="Serve N simulated E2 nodes (the ONOS E2T API onos.e2t.e2.v1beta1, E2SM-IQ) on consecutive "
        "ports, each streaming frames of the given tasks at a set rate.",
        epilog=COMMANDS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--nodes", type=int, default=4, help="number of nodes e2node-0.. (default: %(default)s)")
    p.add_argument("--base-port", type=int, default=50051,
                   help="node i listens on base-port + i; 0 picks free ports (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default: %(default)s)")
    p.add_argument("--rate", type=float, default=100.0,
                   help="Indications per second per subscription, tasks round-robin (default: %(default)s)")
    p.add_argument("--frames-per-indication", type=int, default=1, metavar="N",
                   help="frames of one task in each Indication (E2SM-IQ multi-frame form when > 1; default: %(default)s)")
    p.add_argument("--tasks", help="comma-separated (default: the in-distribution tasks, xapp.data.PRETRAIN_TASKS)")
    p.add_argument("--snr-min", type=float, help="lowest SNR in dB (default: each task's own range)")
    p.add_argument("--snr-max", type=float, help="highest SNR in dB")
    p.add_argument("--seed", type=int, default=0, help="frame generator seed (default: %(default)s)")
    p.add_argument("--pool", type=int, default=64, help="frames pre-generated per task (default: %(default)s)")
    p.add_argument("--samples", default="", metavar="TASK=N[,TASK=N]",
                   help="samples per frame of these tasks, for an xApp that reads them in windows (descriptor "
                        "`windows`: modulation=4096 for 4); default: each task's own length")
    p.add_argument("--duration", type=float, default=0.0, help="seconds to serve; 0 = until Ctrl-C")
    p.add_argument("--tls-cert", help="serve gRPC over TLS with this PEM certificate chain (with --tls-key); "
                   "default: plaintext, for the demo only")
    p.add_argument("--tls-key", help="PEM private key of --tls-cert")
    p.add_argument("--tls-client-ca", help="mTLS: refuse clients without a certificate signed by this PEM CA")
    p.set_defaults(handler=run_e2sim)


def run_e2sim(args: argparse.Namespace) -> int:
    from xapp.cli_error import CliError
    from xapp.data import PRETRAIN_TASKS, TASKS, DataError
    from xapp.e2.sim import SimulatedNodes

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks is not None else list(PRETRAIN_TASKS)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise CliError(f"--tasks: unknown task(s) {unknown or tasks}; choose from {', '.join(TASKS)}")
    if args.nodes < 1 or args.pool < 1 or args.frames_per_indication < 1 or args.rate < 0 or args.duration < 0:
        raise CliError("--nodes, --pool and --frames-per-indication must be >= 1, --rate and --duration >= 0")
    if not 0 <= args.base_port <= 65535 - args.nodes:
        raise CliError(f"--base-port {args.base_port}: ports {args.base_port}..{args.base_port + args.nodes - 1} "
                       "do not all exist")
    if (args.snr_min is None) != (args.snr_max is None):
        raise CliError("give both --snr-min and --snr-max, or neither")
    snr = None if args.snr_min is None else (args.snr_min, args.snr_max)
    if snr is not None and snr[0] > snr[1]:
        raise CliError(f"--snr-min {snr[0]} is above --snr-max {snr[1]}")
    samples = _samples(args.samples, tasks)
    nodes = SimulatedNodes(args.nodes, tasks=tasks, base_port=args.base_port, host=args.host, rate_hz=args.rate,
                           snr_db=snr, seed=args.seed, pool_size=args.pool, tls=_server_tls(args),
                           frames_per_indication=args.frames_per_indication, samples=samples)
    try:
        return asyncio.run(_serve(nodes, args.duration))
    except DataError as exc:  # a --samples length the task's generator cannot make
        raise CliError(f"--samples: {exc}") from None


def _samples(spec: str, tasks: list[str]) -> dict[str, int]:
    from xapp.cli_error import CliError

    samples = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        task, _, count = item.partition("=")
        if task not in tasks or not count.isdigit():
            raise CliError(f"--samples: expected TASK=N with TASK among --tasks ({', '.join(tasks)}), got {item!r}")
        samples[task] = int(count)
    return samples


def _server_tls(args: argparse.Namespace) -> ServerTls | None:
    from pathlib import Path

    from xapp.cli_error import CliError
    from xapp.e2.tls import ServerTls

    if (args.tls_cert is None) != (args.tls_key is None):
        raise CliError("give both --tls-cert and --tls-key, or neither")
    if args.tls_cert is None:
        if args.tls_client_ca is not None:
            raise CliError("--tls-client-ca needs --tls-cert and --tls-key")
        print("e2sim: WARNING plaintext gRPC (no --tls-cert): for the demo only", file=sys.stderr, flush=True)
        return None
    return ServerTls(Path(args.tls_cert), Path(args.tls_key), Path(args.tls_client_ca) if args.tls_client_ca else None)


async def _serve(nodes: SimulatedNodes, duration: float) -> int:
    from xapp.cli_error import CliError
    from xapp.e2.sim import SimError

    try:
        await nodes.start()
    except SimError as exc:
        raise CliError(str(exc)) from None
    for node in nodes:
        print(f"e2sim: {node.node_id} listening on {node.endpoint.address}", flush=True)
    print(f"e2sim: ready ({len(nodes.nodes)} nodes, tasks {','.join(nodes.tasks)}, {nodes.rate_hz:g}/s each)",
          flush=True)

    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    commands = asyncio.create_task(_read_commands(nodes))
    try:
        await asyncio.wait_for(done.wait(), duration or None)
    except TimeoutError:
        pass
    finally:
        commands.cancel()
        await nodes.stop()
    for node in nodes:
        print(f"e2sim: {node.node_id} sent {node.frames_sent} frames, {len(node.malformed_sent)} malformed, "
              f"{len(node.controls)} controls applied, serving beam {node.serving_beam}", flush=True)
    return 0


async def _read_commands(nodes: SimulatedNodes) -> None:
    try:
        mode = os.fstat(sys.stdin.fileno()).st_mode
    except (OSError, ValueError):
        return  # no stdin
    # Only pipes, sockets and terminals can be watched by the event loop (not files, not /dev/null).
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or sys.stdin.isatty()):
        return
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        words = line.decode(errors="replace").split()
        if not words:
            continue
        try:
            reply = await _command(nodes, words)
        except KeyError as exc:
            reply = f"bad command {' '.join(words)!r}: no node {exc}; send 'help' for the commands"
        except IndexError:
            reply = f"bad command {' '.join(words)!r}: missing argument; send 'help' for the commands"
        except ValueError as exc:
            reply = f"bad command {' '.join(words)!r}: {exc}; send 'help' for the commands"
        print(f"e2sim: {reply}", flush=True)


async def _command(nodes: SimulatedNodes, words: list[str]) -> str:
    from xapp.e2.sim import SimError

    verb, rest = words[0], words[1:]
    if verb == "help":
        return COMMANDS
    if verb not in ("status", "rate", "drop", "end", "restart", "stop", "start", "malformed"):
        raise ValueError(f"unknown command {verb!r}")
    if verb == "status":
        return " | ".join(
            f"{n.node_id} {'up' if n.running else 'down'} streams={n.active_streams} sent={n.frames_sent} "
            f"beam={n.serving_beam}" for n in nodes
        )
    if verb == "rate":
        targets = _targets(nodes, rest[1] if len(rest) > 1 else "all")
        for node in targets:
            node.rate_hz = float(rest[0])
        return f"rate {float(rest[0]):g}/s on {_names(targets)}"
    targets = _targets(nodes, rest[0])
    if verb in ("drop", "end"):
        count = sum(node.drop_streams("abort" if verb == "drop" else "end") for node in targets)
        return f"{verb}: {count} stream(s) on {_names(targets)}"
    if verb == "restart":
        downtime = float(rest[1]) if len(rest) > 1 else 0.0
        await asyncio.gather(*(node.restart(downtime) for node in targets))
        return f"restarted {_names(targets)}"
    if verb in ("stop", "start"):
        await asyncio.gather(*(getattr(node, verb)() for node in targets))
        return f"{verb}: {_names(targets)}"
    kinds = rest[1].split(",")  # malformed
    try:
        for node in targets:
            node.inject(kinds)
    except SimError as exc:
        raise ValueError(str(exc)) from None
    return f"queued {','.join(kinds)} on {_names(targets)}"


def _targets(nodes: SimulatedNodes, name: str) -> list[SimulatedNode]:
    return list(nodes) if name == "all" else [nodes[name]]


def _names(targets: list[SimulatedNode]) -> str:
    return ",".join(node.node_id for node in targets)
