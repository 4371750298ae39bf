"""`xapp chaos`: run the fault campaign (xapp.chaos.campaign) against the xApp and print its table."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from xapp.chaos.plan import ChaosPlan
from xapp.config.shipped import DESCRIPTOR_HELP


def register(subparsers: argparse._SubParsersAction) -> None:
    d = ChaosPlan()
    p = subparsers.add_parser(
        "chaos",
        help="fault campaign: malformed floods, node churn, Redis outage, bad reloads, soak",
        description="Run the xApp on the descriptor's model against simulated E2 nodes behind fault proxies, an "
        "embedded Redis and a ZMQ listener; inject faults phase by phase and print what was sent, rejected, "
        "answered, recovered and dropped. Exit status 1 when a guarantee broke (a crash, a silent loss...).",
    )
    p.add_argument("--descriptor", help=f"model, tasks and batching to use ({DESCRIPTOR_HELP})")
    p.add_argument("--nodes", type=int, default=d.nodes, help="simulated E2 nodes (default: %(default)s)")
    p.add_argument("--rate", type=float, default=d.rate_hz, help="Indications/s per node while a phase runs (default: %(default)s)")
    p.add_argument("--flood-rounds", type=int, default=d.flood_rounds,
                   help="each round: every malformed kind once per node, then one replay (default: %(default)s)")
    p.add_argument("--wire-rounds", type=int, default=d.wire_rounds, help="rounds of wire faults (default: %(default)s)")
    p.add_argument("--churn-cycles", type=int, default=d.churn_cycles, help="rounds of aborts/ends/restarts (default: %(default)s)")
    p.add_argument("--outage", type=float, default=d.outage_s, help="seconds one node stays down (default: %(default)s)")
    p.add_argument("--max-down", type=float, default=d.max_down_s, help="e2.max_down_s for the run (default: %(default)s)")
    p.add_argument("--redis-outage", type=float, default=d.redis_outage_s, help="seconds Redis stays down (default: %(default)s)")
    p.add_argument("--redis-buffer", type=int, default=d.redis_buffer, help="publish.redis.buffer for the run (default: %(default)s)")
    p.add_argument("--soak", type=float, default=d.soak_s, help="soak seconds (default: %(default)s)")
    p.add_argument("--threads", type=int, help="torch threads (default: all cores but one)")
    p.add_argument("--json", dest="json_path", help="also write the figures as JSON here")
    p.set_defaults(handler=run_chaos)


def run_chaos(args: argparse.Namespace) -> int:
    from xapp.chaos.campaign import Campaign, ChaosError
    from xapp.cli_error import CliError
    from xapp.config.shipped import descriptor_argument
    from xapp.ops.logging import configure

    if min(args.nodes, args.flood_rounds, args.wire_rounds, args.churn_cycles, args.redis_buffer) < 1:
        raise CliError("--nodes, --flood-rounds, --wire-rounds, --churn-cycles and --redis-buffer must be >= 1")
    if min(args.rate, args.soak, args.redis_outage, args.max_down) <= 0:
        raise CliError("--rate, --soak, --redis-outage and --max-down must be positive")
    plan = ChaosPlan(
        nodes=args.nodes, rate_hz=args.rate, flood_rounds=args.flood_rounds, wire_rounds=args.wire_rounds,
        churn_cycles=args.churn_cycles, max_down_s=args.max_down, outage_s=args.outage,
        redis_outage_s=args.redis_outage, redis_buffer=args.redis_buffer, soak_s=args.soak, threads=args.threads,
    )
    configure("CRITICAL")  # the faults are deliberate: their warnings would bury the table
    try:
        campaign = Campaign(descriptor_argument(args.descriptor), plan, progress=lambda line: print(f"chaos: {line}", flush=True))
        report = asyncio.run(campaign.run())
    except ChaosError as exc:
        raise CliError(str(exc)) from None
    print(report.table())
    if args.json_path:
        Path(args.json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_path).write_text(json.dumps({"figures": report.figures, "failures": report.failures}, indent=2))
    return 1 if report.failures else 0
