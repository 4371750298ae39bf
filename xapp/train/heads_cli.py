"""`xapp heads train|select`, `xapp report`, `xapp eval`: per-task heads, exit choice, results."""

from __future__ import annotations

import argparse
from pathlib import Path

SHIPPED_MANIFEST = "default: the shipped heads/manifest.yaml"


def register(subparsers: argparse._SubParsersAction) -> None:
    heads = subparsers.add_parser("heads", help="train per-task heads at every exit; choose each task's exit")
    sub = heads.add_subparsers(dest="heads_command", required=True, metavar="ACTION")

    p = sub.add_parser("train", help="train a head at every exit for every task (encoder frozen)")
    p.add_argument("--checkpoint", help="encoder checkpoint (default: the packaged one)")
    p.add_argument("--tasks", help="comma-separated (default: every task of xapp.data.TASKS)")
    p.add_argument("--out", default="heads", help="output directory (head files + manifest.yaml)")
    p.add_argument("--train", type=int, default=4000, help="training frames per task")
    p.add_argument("--val", type=int, default=1000, help="validation frames per task")
    p.add_argument("--test", type=int, default=2000, help="test frames per task")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--pooling", default="mean",
                   help="mean | attn | energy, or several comma-separated such as mean,energy (train each at "
                        "every exit, keep the best by validation)")
    p.add_argument("--queries", type=int, default=1, help="learned queries of attention pooling")
    p.add_argument("--projections", type=int, default=24, help="learned projections of energy pooling")
    p.add_argument("--hidden", type=int, default=128, help="width of the hidden layer (0: a linear head)")
    p.add_argument("--side", default="none",
                   help="none | auto | lines,hand,symbols,cancel,beams (any of them): also train heads that read "
                        "these classical features of the raw frame beside the exit, and keep them where validation "
                        "says they are better (auto: the spectral lines and the frame less its strongest signal for "
                        "interference, the lines and the recovered symbols for modulation, DFT beams for beam; none "
                        "for the unseen tasks)")
    p.add_argument("--exits", default="", metavar="K[,K...]",
                   help="train heads at these exits only (default: every exit); `xapp heads merge` then replaces "
                        "the task's heads at those exits and keeps the others")
    p.add_argument("--seed", type=int, default=0, help="seed of the data splits and head initialisation")
    p.add_argument("--batch", type=int, default=128, help="frames per optimiser step of a head")
    p.add_argument("--device", default="cpu", help="cpu | cuda: where features are computed and heads trained")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=train_command)

    p = sub.add_parser("merge", help="copy another heads directory's tasks into this one, replacing their heads")
    p.add_argument("source", type=Path, help="heads directory (with its manifest.yaml) whose tasks to take")
    p.add_argument("--into", type=Path, default=None, help="heads directory to update (default: the shipped heads/)")
    p.set_defaults(handler=merge_command)

    p = sub.add_parser("calibrate", help="fit each head's temperature on its validation split, so that a "
                                         "decision's confidence is about as often right as it says")
    p.add_argument("directory", type=Path, nargs="?", default=None, help="heads directory (default: the shipped heads/)")
    p.add_argument("--tasks", help="comma-separated (default: every task in its manifest)")
    p.add_argument("--data", help="fit on this labelled recording (.npz or .sigmf-meta, as `xapp eval` reads) "
                                  "instead of the validation split: one task's frames from your own site")
    p.add_argument("--windows", default="", metavar="N[,N...]",
                   help="also fit how each head decides a capture read in windows (descriptor `windows`), on "
                        "validation captures of these window counts, e.g. 2,4")
    p.add_argument("--checkpoint", help="the encoder the heads were trained on (default: the packaged one)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.set_defaults(handler=calibrate_command)

    p = sub.add_parser("select", help="choose each task's exit and write it into a descriptor")
    p.add_argument("--manifest", type=Path, default=None, help=SHIPPED_MANIFEST)
    p.add_argument("--descriptor", type=Path, default=None, help="default: the shipped descriptors/default.yaml")
    rule = p.add_mutually_exclusive_group()
    rule.add_argument("--tolerance", type=float, default=0.5,
                      help="shallowest exit within this many accuracy points of the best (default 0.5)")
    rule.add_argument("--budget-gflops", type=float, help="instead: the most accurate exit within this GFLOPs/frame")
    rule.add_argument("--mean-budget-gflops", type=float,
                      help="instead: the exits with the best mean accuracy whose mean GFLOPs/frame over the tasks "
                           "fits (tasks sending equally many frames)")
    p.add_argument("--tasks", help="comma-separated (default: every task in the manifest; with --mean-budget-gflops, "
                                   "those the descriptor lists)")
    p.add_argument("--dry-run", action="store_true", help="print the choice, leave the descriptor alone")
    p.set_defaults(handler=_shipped_defaults(select_command))

    p = subparsers.add_parser("report", help="write docs/results.md and plots from the shipped heads")
    p.add_argument("--manifest", type=Path, default=None, help=SHIPPED_MANIFEST)
    p.add_argument("--checkpoint", help="encoder checkpoint (default: the packaged one)")
    p.add_argument("--out", default="docs")
    p.add_argument("--frames", type=int, default=500, help="test frames per task for the dynamic-exit runs")
    p.add_argument("--batch", type=int, default=64, help="engine batch size for the dynamic-exit runs")
    p.add_argument("--tolerance", type=float, default=0.5, help="exit rule tolerance, in accuracy points")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--baselines", default="docs/baselines.json",
                   help="baselines cached by `xapp baselines`, shown beside the heads on our test set and the cross-check")
    p.set_defaults(handler=_shipped_defaults(report_command))

    p = subparsers.add_parser("eval", help="score the shipped heads at every exit on your own labelled data")
    p.add_argument("--task", required=True)
    p.add_argument("--data", required=True,
                   help="a .npz dataset or a .sigmf-meta recording; .npz frames longer than the heads' (a whole "
                        "number of times as long) are each decided over that many windows")
    p.add_argument("--manifest", type=Path, default=None, help=SHIPPED_MANIFEST)
    p.add_argument("--checkpoint", help="encoder checkpoint (default: the packaged one)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=_shipped_defaults(eval_command))


def _shipped_defaults(handler):
    """Fill --manifest / --descriptor left out with the shipped files, found from any directory."""

    def run(args: argparse.Namespace) -> int:
        from xapp.config.shipped import default_descriptor, default_manifest

        if getattr(args, "manifest", "absent") is None:
            args.manifest = default_manifest()
        if getattr(args, "descriptor", "absent") is None:
            args.descriptor = default_descriptor()
        return handler(args)

    return run


def merge_command(args: argparse.Namespace) -> int:
    from xapp.cli_error import CliError
    from xapp.config.manifest import ManifestError
    from xapp.config.shipped import default_manifest
    from xapp.train.head_training import merge_heads

    into = args.into or Path(default_manifest()).parent
    command = f"xapp heads merge {args.source} --into {args.into or 'heads'}"
    try:
        path = merge_heads(args.source, into, command)
    except (ManifestError, OSError) as exc:
        raise CliError(str(exc)) from exc
    print(f"wrote {path}")
    return 0


def calibrate_command(args: argparse.Namespace) -> int:
    import torch

    from xapp.cli_error import CliError
    from xapp.config.manifest import ManifestError, read_manifest
    from xapp.config.shipped import default_manifest
    from xapp.model import WeightsFileError
    from xapp.train.evaluate import EvalError
    from xapp.train.head_training import MANIFEST, calibrate_heads

    directory = args.directory or Path(default_manifest()).parent
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        manifest = read_manifest(directory / MANIFEST)
        tasks = _tasks(args.tasks, manifest["tasks"]) if args.tasks is not None else None
        windows = _window_counts(args.windows)
        if windows and args.data:
            raise CliError("--windows fits on validation captures that it generates; give it without --data")
        recordings = None
        if args.data:
            if tasks is None or len(tasks) != 1:
                raise CliError("--data: name the one task its frames are of with --tasks")
            x, y, source, captured = _labelled_frames(manifest, tasks[0], args.data)
            if captured > 1:
                raise EvalError(f"{source}: --data needs frames of the heads' own shape "
                                f"{manifest['tasks'][tasks[0]]['frame_shape']}, whose labels are each window's; "
                                f"these are captures {captured} times as long (`xapp eval` reads those)")
            recordings = {tasks[0]: (x, y, source)}
        encoder = _encoder_for(manifest, args.checkpoint)
        command = (f"xapp heads calibrate {args.directory or 'heads'}" + (f" --tasks {args.tasks}" if args.tasks else "")
                   + (f" --data {args.data}" if args.data else "") + (f" --windows {args.windows}" if windows else "")
                   + (f" --checkpoint {args.checkpoint}" if args.checkpoint else ""))
        path = calibrate_heads(directory, encoder, tasks, command, recordings, windows=windows)
    except (ManifestError, WeightsFileError, EvalError, OSError) as exc:
        raise CliError(str(exc)) from exc
    print(f"wrote {path}")
    return 0


def train_command(args: argparse.Namespace) -> int:
    import torch

    from xapp.cli_error import CliError
    from xapp.data import TASKS
    from xapp.model import DEFAULT_ENCODER, WeightsFileError, load_encoder
    from xapp.model.safefile import sha256_file
    from xapp.train.head_training import TrainSettings, train_all

    tasks = _tasks(args.tasks, TASKS) if args.tasks is not None else list(TASKS)
    if args.threads:
        torch.set_num_threads(args.threads)
    checkpoint = args.checkpoint or DEFAULT_ENCODER
    try:
        encoder = load_encoder(checkpoint)
    except WeightsFileError as exc:
        raise CliError(str(exc)) from exc
    encoder = encoder.to(args.device)
    for name in ("train", "val", "test", "epochs", "batch"):
        if getattr(args, name) < 1:
            raise CliError(f"--{name} must be at least 1, got {getattr(args, name)}")
    try:
        exits = tuple(int(k) for k in args.exits.split(",")) if args.exits else ()
    except ValueError as exc:
        raise CliError(f"--exits: comma-separated exit numbers, got {args.exits!r}") from exc
    settings = TrainSettings(train=args.train, val=args.val, test=args.test, epochs=args.epochs, lr=args.lr,
                             batch=args.batch, pooling=args.pooling, hidden=args.hidden, queries=args.queries,
                             projections=args.projections, side=args.side, seed=args.seed, exits=exits)
    try:
        settings.exits_of(encoder.cfg.depth)
    except ValueError as exc:
        raise CliError(f"--exits: {exc}") from exc
    try:
        settings.poolings()
    except ValueError as exc:
        raise CliError(f"--pooling: {exc}") from exc
    try:
        for task in tasks:
            settings.sides(task)
    except ValueError as exc:
        raise CliError(f"--side: {exc}") from exc
    command = (f"xapp heads train --tasks {','.join(tasks)} --out {args.out} --train {args.train} --val {args.val} "
               f"--test {args.test} --epochs {args.epochs} --lr {args.lr} --batch {args.batch} "
               f"--pooling {args.pooling} --hidden {args.hidden} --queries {args.queries} "
               f"--projections {args.projections} --side {args.side} --seed {args.seed} "
               f"--device {args.device}" + (f" --exits {args.exits}" if args.exits else "")
               + (f" --checkpoint {args.checkpoint}" if args.checkpoint else ""))
    encoder_file = {"file": str(args.checkpoint or "xapp/assets/encoder.safetensors"), "sha256": sha256_file(checkpoint)}
    path = train_all(encoder, encoder_file, tasks, settings, args.out, command, progress=not args.quiet)
    print(f"wrote {path}")
    return 0


def select_command(args: argparse.Namespace) -> int:
    from xapp.cli_error import CliError
    from xapp.config.manifest import ManifestError, read_manifest, task_heads
    from xapp.train.report import profile
    from xapp.train.select import (Choice, SelectionError, best_under_budget, best_under_mean_budget,
                                   descriptor_tasks, shallowest_within, write_choices)

    try:
        manifest = read_manifest(args.manifest)
        if args.tasks:
            tasks = _tasks(args.tasks, manifest["tasks"])
        elif args.mean_budget_gflops is not None:
            listed = descriptor_tasks(args.descriptor)
            tasks = [t for t in manifest["tasks"] if t in listed]
        else:
            tasks = list(manifest["tasks"])
        entries = {task: task_heads(manifest, task, args.manifest) for task in tasks}
        profiles = {task: profile(entries[task]) for task in tasks}
        if args.mean_budget_gflops is not None:
            picks = best_under_mean_budget(profiles, args.mean_budget_gflops)
        elif args.budget_gflops is not None:
            picks = {task: best_under_budget(profiles[task], args.budget_gflops) for task in tasks}
        else:
            picks = {task: shallowest_within(profiles[task], args.tolerance) for task in tasks}
        choices = {}
        print(f"{'task':<13}{'exit':>5}{'val acc':>9}{'best (exit)':>14}{'GFLOPs':>9}{'saved':>8}")
        for task in tasks:
            scores, pick = profiles[task], picks[task]
            best = max(scores, key=lambda s: s.val_accuracy)
            entry = next(h for h in entries[task] if h["exit"] == pick.exit)
            choices[task] = Choice(pick.exit, entry["path"], entry["sha256"])
            print(f"{task:<13}{pick.exit:>5}{100 * pick.val_accuracy:>8.1f}%{100 * best.val_accuracy:>8.1f}% ({best.exit})"
                  f"{pick.gflops:>9.4f}{100 * (1 - pick.gflops / scores[-1].gflops):>7.1f}%")
        mean_gflops = sum(p.gflops for p in picks.values()) / len(picks)
        print(f"mean over these tasks: {100 * sum(p.val_accuracy for p in picks.values()) / len(picks):.1f}% val, "
              f"{mean_gflops:.4f} GFLOPs/frame")
        if args.dry_run:
            return 0
        skipped = write_choices(args.descriptor, choices)
    except (ManifestError, SelectionError, OSError) as exc:
        raise CliError(str(exc)) from exc
    print(f"wrote exits of {', '.join(t for t in choices if t not in skipped)} into {args.descriptor}"
          + (f"; not in it (left out): {', '.join(skipped)}" if skipped else ""))
    return 0


def report_command(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from xapp.cli_error import CliError
    from xapp.model import WeightsFileError
    from xapp.config.manifest import ManifestError, read_manifest
    from xapp.train.report import build_results, write_report

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        manifest = read_manifest(args.manifest)
        encoder = _encoder_for(manifest, args.checkpoint)
        results = build_results(manifest, args.manifest, encoder, args.frames, args.batch, args.tolerance,
                                progress=lambda total: tqdm(total=total, desc="engine runs", unit="run"),
                                baselines=args.baselines)
    except (ManifestError, WeightsFileError) as exc:
        raise CliError(str(exc)) from exc
    print(f"wrote {write_report(results, args.out)}")
    return 0


def eval_command(args: argparse.Namespace) -> int:
    import json

    from xapp.cli_error import CliError
    from xapp.model import WeightsFileError, load_head
    from xapp.train.evaluate import EvalError, evaluate_exits, format_eval_table
    from xapp.config.manifest import ManifestError, read_manifest, task_heads

    try:
        manifest = read_manifest(args.manifest)
        if args.task not in manifest["tasks"]:
            raise EvalError(f"unknown task {args.task!r}; the heads in {args.manifest} cover {', '.join(manifest['tasks'])}")
        x, y, _, windows = _labelled_frames(manifest, args.task, args.data)
        heads = {h["exit"]: load_head(h["path"], h["sha256"])[0] for h in task_heads(manifest, args.task, args.manifest)}
        rows = evaluate_exits(_encoder_for(manifest, args.checkpoint), heads, x, y, windows=windows)
    except (ManifestError, EvalError, WeightsFileError) as exc:
        raise CliError(str(exc)) from exc
    print(json.dumps({"task": args.task, "data": args.data, "exits": rows}, indent=1) if args.json
          else format_eval_table(args.task, args.data, rows))
    return 0


def _labelled_frames(manifest: dict, task: str, source: str):
    """An operator's recording of `task` as the heads read it: its labelled frames, their labels as indices
    into the heads' classes, the source, and how many of the heads' frames each frame holds along time
    (raises EvalError on anything the heads cannot score)."""
    from xapp.train.evaluate import check_frames, labels_for, load_recording

    info = manifest["tasks"][task]
    data = load_recording(source, task, info["frame_shape"][1])
    windows = check_frames(data, info["frame_shape"], task, source)
    y = labels_for(data, task, info["classes"], source)
    return data.x[y >= 0], y[y >= 0], str(source), windows


def _window_counts(spec: str) -> list[int]:
    from xapp.cli_error import CliError

    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not all(p.isdigit() and 2 <= int(p) <= 16 for p in parts):
        raise CliError(f"--windows: expected window counts from 2 to 16, comma-separated, got {spec!r}")
    return sorted({int(p) for p in parts})


def _tasks(spec: str, known) -> list[str]:
    from xapp.cli_error import CliError

    tasks = [t.strip() for t in spec.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in known]
    if unknown or not tasks:
        raise CliError(f"unknown task(s) {unknown or spec!r}; choose from {', '.join(known)}")
    return tasks


def _encoder_for(manifest: dict, checkpoint: str | None):
    """The encoder the heads were trained on: refuses a checkpoint whose sha256 differs from the manifest's."""
    from xapp.model import DEFAULT_ENCODER, WeightsFileError, load_encoder

    path = checkpoint or DEFAULT_ENCODER
    try:
        return load_encoder(path, sha256=manifest["encoder"]["sha256"])
    except WeightsFileError as exc:
        raise WeightsFileError(f"{exc}; the heads in this manifest were trained on that encoder "
                               "(pass its file with --checkpoint, or retrain with `xapp heads train`)") from exc
