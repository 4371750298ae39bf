"""`xapp data generate | show | bench`."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Iterator


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="synthetic radio task suite: generate, show, bench")
    commands = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")

    gen = commands.add_parser("generate", help="write a labelled dataset of one task to .npz")
    gen.add_argument("--task", required=True, help="modulation | interference | beam | los | fingerprint")
    gen.add_argument("--n", type=int, required=True, help="number of frames")
    gen.add_argument("--seed", type=int, default=0, help="same seed, same bytes (default 0)")
    gen.add_argument("--out", required=True, help="output .npz path")
    gen.add_argument("--samples", type=int, help="samples per frame (default: the task's frame length)")
    gen.add_argument("--snr-db", type=float, nargs="+", metavar="DB", help="one SNR or a LOW HIGH range")
    gen.add_argument("--no-impairments", action="store_true", help="AWGN only: no fading, offsets or phase noise")
    gen.add_argument("--source", choices=("ours", "crosscheck"), default="ours",
                     help="ours (xapp.data) or the independent cross-check (xapp.crosscheck: modulation, "
                          "interference, beam; never trained on)")
    gen.set_defaults(handler=generate_command)

    show = commands.add_parser("show", help="render a dataset (.npz or .sigmf-meta) to a PNG")
    show.add_argument("path", help="dataset .npz (or a .sigmf-meta recording)")
    show.add_argument("--out", required=True, help="output .png path")
    show.add_argument("--samples", type=int, default=1024, help="frame length when reading SigMF (default 1024)")
    show.set_defaults(handler=show_command)

    bench = commands.add_parser("bench", help="frames/s of every generator, single process")
    bench.add_argument("--n", type=int, default=5000, help="frames per timed run (default 5000)")
    bench.add_argument("--repeats", type=int, default=3, help="timed runs per task; the best counts (default 3)")
    bench.add_argument("--task", action="append", help="only this task (repeatable)")
    bench.add_argument("--json", action="store_true", help="print JSON instead of a table")
    bench.set_defaults(handler=bench_command)


@contextlib.contextmanager
def user_errors(out: str) -> Iterator[None]:
    """Bad data or arguments, and an unwritable output, become one-line CLI errors."""
    from xapp.cli_error import CliError

    from .base import DataError

    try:
        yield
    except DataError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc.strerror}") from None


def generate_command(args: argparse.Namespace) -> int:
    from xapp.cli_error import CliError

    from . import generate
    from .io import save_npz

    options: dict = {}
    if args.samples is not None:
        options["samples"] = args.samples
    if args.snr_db is not None:
        if len(args.snr_db) > 2:
            raise CliError(f"--snr-db takes one value or LOW HIGH, got {len(args.snr_db)} values")
        options["snr_db"] = args.snr_db[0] if len(args.snr_db) == 1 else tuple(args.snr_db)
    if args.no_impairments:
        if args.source == "crosscheck":
            raise CliError("--no-impairments applies to --source ours only")
        options["impairments"] = False
    if args.source == "crosscheck":
        from xapp.crosscheck import generate
    with user_errors(args.out):
        data = generate(args.task, args.n, args.seed, **options)
        save_npz(args.out, data)
    counts = ", ".join(f"{c}={int((data.y == i).sum())}" for i, c in enumerate(data.classes))
    print(f"wrote {args.out}: {data.task} x{tuple(data.x.shape)} {counts}")
    return 0


def show_command(args: argparse.Namespace) -> int:
    from .io import load_npz, load_sigmf
    from .show import save_figure

    with user_errors(args.out):
        data = load_sigmf(args.path, samples=args.samples) if args.path.endswith(".sigmf-meta") else load_npz(args.path)
        save_figure(data, args.out)
    print(f"wrote {args.out}")
    return 0


def bench_command(args: argparse.Namespace) -> int:
    from xapp.cli_error import CliError

    from . import TASKS
    from .bench import run

    unknown = [t for t in args.task or () if t not in TASKS]
    if unknown:
        raise CliError(f"unknown task {', '.join(unknown)}; choose from {', '.join(TASKS)}")
    if args.n < 1 or args.repeats < 1:
        raise CliError("--n and --repeats must be positive")
    result = run(args.n, args.repeats, tuple(args.task) if args.task else None)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return 0
    print(f"{'task':<14}{'frame':>8}{'frames/s':>12}{'CPU frames/s':>14}")
    for row in result["tasks"]:
        print(f"{row['task']:<14}{row['frame']:>8}{row['frames_per_s']:>12,}{row['cpu_frames_per_s']:>14,}")
    mix = result["pretrain_mixture_per_call"]
    print("pretrain_mixture: " + ", ".join(f"n={k}: {v['ms']} ms/call ({v['cpu_ms']} ms CPU)" for k, v in mix.items()))
    return 0
