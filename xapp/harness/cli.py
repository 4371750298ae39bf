"""`xapp demo | bench`: the whole loop on this machine, and what early exit buys, measured."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from xapp.config.shipped import DESCRIPTOR_HELP


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo", help="embedded Redis + 4 simulated E2 nodes + the xApp + a listener",
                              description="Run the whole loop on this machine and print a summary.")
    p.add_argument("--seconds", type=float, default=20.0, help="how long to run; 0: until Ctrl-C (default: %(default)s)")
    p.add_argument("--descriptor", help=f"descriptor to serve and watch for edits ({DESCRIPTOR_HELP})")
    p.add_argument("--rate", type=float, default=10.0, help="Indications per second per node (default: %(default)s)")
    p.add_argument("--threads", type=int, help="torch threads for the engine (default: all cores but one)")
    p.add_argument("--json", dest="json_path", help="also write the summary as JSON here")
    p.set_defaults(handler=run_demo)

    p = subparsers.add_parser("bench", help="offline and online engine benchmark",
                              description="Naive full-depth serving vs shared-trunk early exit on the same frames, "
                                          "then simulated nodes at 25/50/100/150 %% of measured capacity.")
    p.add_argument("--descriptor", help=f"descriptor whose tasks/exits/batching to use ({DESCRIPTOR_HELP})")
    p.add_argument("--frames", type=int, default=96, help="frames per task in the offline set (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=8.0, help="seconds per online load level (default: %(default)s)")
    p.add_argument("--loads", default="25,50,100,150", help="online loads in %% of capacity (default: %(default)s)")
    p.add_argument("--threads", type=int, help="torch threads (default: all cores but one)")
    p.add_argument("--json", dest="json_path", default="runs/bench.json", help="JSON output (default: %(default)s)")
    p.add_argument("--host", action="store_true",
                   help="host path only: microseconds per frame by stage at batch 1/32/256/512, trivial trunk")
    p.add_argument("--precision", action="store_true",
                   help="engine fp32 / int8 / bf16 and ONNX Runtime fp32 / int8 side by side: frames/s, agreement, accuracy")
    p.add_argument("--test-split", action="store_true",
                   help="with --precision: the first --frames frames of each task's test split in the heads manifest "
                        "(what the shipped accuracies were measured on) instead of frames of the bench's own seed")
    p.add_argument("--ingest", metavar="RATES",
                   help="end-to-end ingest ceiling: offered frames/s to try, comma-separated (trivial trunk)")
    p.add_argument("--frames-per-indication", default="1", metavar="N[,N...]",
                   help="with --ingest: frames each E2SM-IQ Indication carries, several taking turns at each rate "
                        "(default: %(default)s, the single-frame form)")
    p.add_argument("--ingest-trunk", choices=("identity", "tiny"), default="identity",
                   help="with --ingest: identity blocks (the ingest path alone) or width-8 blocks (default: %(default)s)")
    p.set_defaults(handler=run_bench)


def run_demo(args: argparse.Namespace) -> int:
    from xapp.config.shipped import descriptor_argument
    from xapp.harness.demo import demo
    from xapp.ops.signals import until_signal

    args.descriptor = descriptor_argument(args.descriptor)
    with _as_cli_error():
        return asyncio.run(until_signal(lambda stop: demo(args, stop)))


def run_bench(args: argparse.Namespace) -> int:
    from xapp.config.shipped import descriptor_argument
    from xapp.harness.bench import bench

    args.descriptor = descriptor_argument(args.descriptor)
    with _as_cli_error():
        return bench(args)


@contextmanager
def _as_cli_error() -> Iterator[None]:
    from xapp.cli_error import CliError
    from xapp.harness import HarnessError

    try:
        yield
    except HarnessError as exc:
        raise CliError(str(exc)) from None
