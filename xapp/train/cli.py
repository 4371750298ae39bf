"""`xapp pretrain` (MAE pre-training of the shared encoder) and `xapp probe` (linear-probe proof)."""

from __future__ import annotations

import argparse
import dataclasses
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("pretrain", help="pre-train the encoder as a masked autoencoder (resumable)")
    p.add_argument("--config", help="YAML with pre-training settings (default: built-in defaults)")
    p.add_argument("--out", default="runs/pretrain", help="run directory (checkpoints, loss curve)")
    p.add_argument("--steps", type=int, help="override the number of steps")
    p.add_argument("--seed", type=int, help="override the seed")
    p.add_argument("--device", default="auto", help="cpu | cuda | auto")
    p.add_argument("--stop-after", type=int,
                   help="end this call after this many more steps (0: none; export the run as it stands)")
    p.add_argument("--export", nargs="?", const="xapp/assets/encoder.safetensors",
                   help="when done, write the fp16 encoder + card here (default xapp/assets/encoder.safetensors)")
    p.add_argument("--data-workers", type=int, default=0,
                   help="make the frames on this many processes (0: one thread beside training); same batches")
    p.add_argument("--time-budget", type=float, metavar="SECONDS",
                   help="fresh runs only: set the steps so that training ends within this many seconds "
                        "(rate measured over the warm-up; the total is written into the run's config.json)")
    p.set_defaults(handler=pretrain_command)

    p = subparsers.add_parser("probe", help="linear probe on frozen features: pre-trained vs random encoder")
    p.add_argument("--checkpoint", help="encoder checkpoint (default: the packaged one)")
    p.add_argument("--exit", type=int, help="exit to probe (default: the middle one)")
    p.add_argument("--train", type=int, default=4000, help="training frames per task")
    p.add_argument("--test", type=int, default=2000, help="test frames per task")
    p.add_argument("--tasks", default="modulation,beam")
    p.add_argument("--device", default="cpu", help="cpu | cuda (features at fp16 either way)")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--card", action="store_true", help="record the results in the checkpoint's manifest and card")
    p.set_defaults(handler=probe_command)


def command_line() -> str:
    """The command being run, as an operator would type it (recorded in manifests and cards)."""
    return " ".join(["xapp", *sys.argv[1:]])


def pretrain_command(args: argparse.Namespace) -> int:
    from xapp.train.export import export_encoder
    from xapp.train.pretrain import PretrainConfig, pretrain

    cfg = PretrainConfig.from_yaml(args.config, steps=args.steps, seed=args.seed)
    encoder, state = pretrain(cfg, args.out, device=args.device, stop_after=args.stop_after,
                              data_workers=args.data_workers, time_budget_s=args.time_budget)
    cfg = dataclasses.replace(cfg, steps=state["steps"])
    print(f"pre-training at step {state['step']}/{cfg.steps}, last loss {state['losses'][-1]:.4f}, "
          f"wall {state['wall_s'] / 60:.1f} min; run in {args.out}")
    if args.export:
        sha = export_encoder(encoder, cfg, state, args.export, args.out, command_line())
        print(f"wrote {args.export} (sha256 {sha})")
    return 0


def probe_command(args: argparse.Namespace) -> int:
    import json

    from xapp.model.checkpoint import DEFAULT_ENCODER
    from xapp.train.export import read_export_manifest, write_export_manifest
    from xapp.train.probe import format_probe_table, run_probe

    results = run_probe(args.checkpoint, args.exit, args.tasks.split(","), args.train, args.test, args.device)
    print(format_probe_table(results))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    if args.card:
        weights = args.checkpoint or DEFAULT_ENCODER
        manifest = read_export_manifest(weights)
        manifest["probe"] = {**results, "command": command_line()}
        write_export_manifest(weights, manifest)
    return 0
