"""`xapp exits [--task T]`: what each exit of each task costs and buys on this host;
`xapp exits set TASK EXIT`: move a task's exit in the descriptor, which a running xApp hot-reloads."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from xapp.config.shipped import DESCRIPTOR_HELP, descriptor_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "exits", help="per task and exit: accuracy, GFLOPs, latency on this host; `exits set` moves an exit",
        description="Per task and exit: validation accuracy (heads manifest), GFLOPs per frame and latency per "
                    "batch measured here; * marks the descriptor's exit. `xapp exits set TASK EXIT` edits the descriptor.")
    _common(p)
    p.add_argument("--task", action="append", default=[], help="task to show (repeatable; default: the descriptor's tasks)")
    p.add_argument("--batch", type=int, help="frames per timed batch (default: the descriptor's max_batch)")
    p.add_argument("--repeats", type=int, default=5, help="timed passes per task, median kept (default: %(default)s)")
    p.add_argument("--threads", type=int, help="torch threads (default: as the engine, all cores but one)")
    p.add_argument("--plot", metavar="PNG", help="also plot accuracy against GFLOPs and latency here")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=show_command)
    actions = p.add_subparsers(dest="exits_command", metavar="ACTION")
    s = actions.add_parser("set", help="set TASK's exit in the descriptor (validated first, written atomically)",
                           description="Set tasks.TASK.exit, keeping comments; refused unless the result validates. "
                                       "A running xApp watching the file applies it without a restart.")
    s.add_argument("task", metavar="TASK")
    s.add_argument("exit", metavar="EXIT", type=int)
    _common(s)
    s.set_defaults(handler=set_command)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--descriptor", help=f"descriptor ({DESCRIPTOR_HELP})")
    p.add_argument("--manifest", help="heads manifest (default: the descriptor's heads.manifest, else the shipped one)")


def _descriptor_path(args: argparse.Namespace) -> Path:
    return descriptor_argument(args.descriptor)


def _manifest_path(args: argparse.Namespace, descriptor_manifest: Path | None) -> Path:
    from xapp.config.shipped import default_manifest

    return Path(args.manifest) if args.manifest else descriptor_manifest or default_manifest()


def show_command(args: argparse.Namespace) -> int:
    import torch

    from xapp.engine.build import engine_threads
    from xapp.cli_error import CliError
    from xapp.config import DescriptorError, load_descriptor
    from xapp.config.manifest import ManifestError, read_manifest
    from xapp.harness.exits import format_exit_table, plot, profile_task
    from xapp.model import WeightsFileError, load_encoder

    path = _descriptor_path(args)
    try:
        descriptor = load_descriptor(path)
        manifest_path = _manifest_path(args, descriptor.heads_manifest)
        manifest = read_manifest(manifest_path)
        tasks = args.task or [t for t in descriptor.enabled_tasks if t in manifest["tasks"]]
        unknown = [t for t in tasks if t not in manifest["tasks"]]
        if unknown:
            raise CliError(f"no heads for {', '.join(unknown)} in {manifest_path} (it has {', '.join(manifest['tasks'])})")
        batch = args.batch or descriptor.batching.max_batch
        if batch < 1 or args.repeats < 1:
            raise CliError("--batch and --repeats must be at least 1")
        torch.set_num_threads(engine_threads(args.threads))
        encoder = load_encoder(descriptor.encoder.checkpoint)
        rows = []
        for task in tasks:
            spec = descriptor.tasks.get(task)
            chosen = [] if spec is None or not spec.enabled else [spec.exit, *(e.exit for e in spec.policy.exits)]
            rows += profile_task(encoder, manifest, manifest_path, task, chosen, batch, args.repeats)
    except (DescriptorError, ManifestError, WeightsFileError) as exc:
        raise CliError(str(exc)) from exc
    if args.json:
        print(json.dumps({"descriptor": str(path), "manifest": str(manifest_path), "batch": batch,
                          "threads": torch.get_num_threads(), "exits": [r.to_dict() for r in rows]}, indent=1))
    else:
        print(format_exit_table(rows, batch, str(path)))
    if args.plot:
        print(f"wrote {plot(rows, args.plot, batch)}")
    return 0


def set_command(args: argparse.Namespace) -> int:
    import yaml

    from xapp.cli_error import CliError
    from xapp.config.paths import descriptor_root, resolve_path
    from xapp.config.manifest import ManifestError, head_at, read_manifest
    from xapp.train.select import Choice, SelectionError, write_choices

    path = _descriptor_path(args)
    try:
        doc = yaml.safe_load(path.read_text())
        listed = doc.get("tasks") or {}
        if args.task not in listed:
            raise CliError(f"{path} has no task {args.task!r} (it has {', '.join(listed)})")
        named = (doc.get("heads") or {}).get("manifest")
        manifest_path = _manifest_path(args, resolve_path(descriptor_root(path), named) if named else None)
        entry = head_at(read_manifest(manifest_path), args.task, args.exit, manifest_path)
        before = listed[args.task].get("exit")
        write_choices(path, {args.task: Choice(args.exit, entry["path"], entry["sha256"])}, strict=True)
    except (OSError, yaml.YAMLError, ManifestError, SelectionError) as exc:
        raise CliError(str(exc)) from exc
    acc = entry.get("val_accuracy")
    print(f"{path}: tasks.{args.task}.exit {before} -> {args.exit}"
          + (f" (validation accuracy {100 * acc:.1f} %, {entry['gflops']:.3f} GFLOP/frame)" if acc is not None and "gflops" in entry else "")
          + "; a running xApp watching this file applies it without a restart")
    return 0
