"""`xapp flops`: the analytic cost of each exit."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("flops", help="GFLOPs per frame at each encoder exit")
    p.add_argument("--checkpoint", help="encoder checkpoint (default: the packaged one)")
    p.add_argument("--antennas", type=int, default=1)
    p.add_argument("--samples", type=int, default=1024)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(handler=flops_command)


def flops_command(args: argparse.Namespace) -> int:
    import json

    from xapp.model.checkpoint import DEFAULT_ENCODER, read_config
    from xapp.model.config import EncoderConfig
    from xapp.model.flops import exit_flops

    path = args.checkpoint or DEFAULT_ENCODER
    cfg = read_config(path) if (args.checkpoint or DEFAULT_ENCODER.exists()) else EncoderConfig()
    tokens = cfg.tokens(args.antennas, args.samples)
    per_exit = exit_flops(cfg, tokens)
    rows = [{"exit": k, "gflops": f / 1e9, "percent_of_full": 100 * f / per_exit[-1]} for k, f in enumerate(per_exit, 1)]
    if args.json:
        print(json.dumps({"tokens": tokens, "exits": rows}, indent=1))
        return 0
    print(f"encoder dim={cfg.dim} depth={cfg.depth} heads={cfg.heads}; frame {args.antennas}x{args.samples} -> {tokens} tokens")
    print(f"{'exit':>4}  {'GFLOPs/frame':>12}  {'% of full':>9}")
    for row in rows:
        print(f"{row['exit']:>4}  {row['gflops']:>12.4f}  {row['percent_of_full']:>8.1f}%")
    return 0
