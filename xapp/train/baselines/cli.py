"""`xapp baselines`: train and score the classical and supervised baselines, cache them in JSON."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("baselines", help="classical and supervised baselines on the heads' frames "
                                                "(our test set and the cross-check), cached for `xapp report`")
    p.add_argument("--manifest", default=None, help="heads manifest whose splits to use (default: the shipped one)")
    p.add_argument("--tasks", help="comma-separated (default: every task with a baseline, BASELINE_TASKS)")
    p.add_argument("--epochs", type=int, default=20, help="epochs of the supervised networks (default 20)")
    p.add_argument("--train-frames", type=int, default=0,
                   help="train on the first N frames of the heads' training split (default 0: all of them, "
                        "as the heads were)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--out", default="docs/baselines.json")
    p.set_defaults(handler=baselines_command)


def baselines_command(args: argparse.Namespace) -> int:
    import json

    import torch

    from xapp.cli_error import CliError
    from xapp.config.shipped import default_manifest
    from xapp.config.manifest import ManifestError, read_manifest
    from xapp.train.cli import command_line

    from .run import BASELINE_TASKS, run_baselines

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.epochs < 1 or args.train_frames < 0:
        raise CliError(f"--epochs must be at least 1 and --train-frames at least 0, got {args.epochs}, {args.train_frames}")
    args.manifest = args.manifest or default_manifest()
    try:
        manifest = read_manifest(args.manifest)
    except ManifestError as exc:
        raise CliError(str(exc)) from exc
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks is not None else list(BASELINE_TASKS)
    unknown = [t for t in tasks if t not in BASELINE_TASKS or t not in manifest["tasks"]]
    if unknown or not tasks:
        raise CliError(f"no baseline for task(s) {unknown or args.tasks!r}; choose from "
                       f"{', '.join(t for t in BASELINE_TASKS if t in manifest['tasks'])}")
    results = {"command": command_line(), "manifest": str(args.manifest), **run_baselines(manifest, tasks, args.epochs, args.seed, args.train_frames or None)}
    if args.tasks is not None:
        results = _updated(args.out, results)
    try:
        with open(args.out, "w") as fh:
            json.dump(results, fh, indent=1)
            fh.write("\n")
    except OSError as exc:
        raise CliError(f"cannot write {args.out}: {exc.strerror}") from exc
    print(f"wrote {args.out}")
    return 0


SETTINGS = ("epochs", "seed", "train_frames")  # what every task of one cache was trained with


def _updated(path: str, results: dict) -> dict:
    """`results` for some tasks merged into the cache at `path`, where one exists: the tasks run now
    replace their entries, the others keep theirs, and the command joins the cache's `updates`. A cache
    trained with other settings is refused rather than mixed."""
    import json

    from xapp.cli_error import CliError

    try:
        with open(path) as fh:
            cached = json.load(fh)
    except FileNotFoundError:
        return results
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read the baselines cache {path} to update it: {exc}") from exc
    differ = [k for k in SETTINGS if cached.get(k) != results[k]]
    if differ:
        raise CliError(f"{path} holds baselines trained with other {', '.join(differ)} "
                       f"({', '.join(f'{k}={cached.get(k)!r}' for k in differ)}): rerun every task, or write "
                       "these to another --out")
    return {**cached, "updates": [*cached.get("updates", []), results["command"]],
            "tasks": {**cached["tasks"], **results["tasks"]}}
