"""The `xapp` command line: each area of the package registers its own subcommands."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from xapp.cli_error import CliError

# Idle OpenMP workers sleep rather than spin (read when torch loads): on a shared or CPU-limited
# host spinning workers cut engine throughput ~7x (measured: 60 vs 388 frames/s, 2 threads).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Each module exposes `register(subparsers)`; handlers import their heavy dependencies lazily
# so that `xapp --help` stays instant.
COMMAND_MODULES = [
    "xapp.data.cli",
    "xapp.model.cli",
    "xapp.train.cli",
    "xapp.train.heads_cli",
    "xapp.train.baselines.cli",
    "xapp.e2.cli",
    "xapp.config.cli",
    "xapp.harness.exits_cli",
    "xapp.app_cli",
    "xapp.harness.cli",
    "xapp.chaos.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xapp", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return 130
    except CliError as exc:
        print(f"xapp {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
