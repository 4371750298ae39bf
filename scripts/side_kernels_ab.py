"""The side features' compiled CPU kernels against their torch reference (xapp.model.side.COMPILED),
three ways, each on one torch thread in thread CPU time:

- per call: the symbols and cancellation of n frames of each (one receiver pass), best of 15, the two
  paths in turns;
- decisions: the shipped heads at the default and accurate exits on each task's test split, fed
  either path's features (agreement and accuracy);
- engine: early exit and naive serving on `xapp bench`'s frames with torch features, compiled
  features and side features that cost nothing (zeros of their width), in turns, median of four rounds.

    python scripts/side_kernels_ab.py [--sizes 1,2,4,8,32] [--decisions] [--engine]
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import numpy as np
import torch

import xapp.engine.runner as runner
from xapp.config.descriptor import load_descriptor
from xapp.config.manifest import read_manifest, task_heads
from xapp.data import generate
from xapp.engine.build import build_table
from xapp.engine.runner import EarlyExitEngine
from xapp.engine.choose import sample_requests
from xapp.harness.bench import _naive, early_exit_pass
from xapp.harness.hostbench import _timed
from xapp.model import load_encoder, load_head
from xapp.model import side
from xapp.ops.metrics import Metrics
from xapp.train.calibration import exit_predictions


def cpu_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Smallest of `repeats` timings of fn() in this thread's CPU seconds, after one call to warm up."""
    fn()
    return _timed(fn, repeats)


def per_call(sizes: list[int]) -> None:
    modulation = torch.from_numpy(generate("modulation", max(sizes), 1).x)
    interference = torch.from_numpy(generate("interference", max(sizes), 2).x)
    print(f"{'n':>4}{'torch ms':>11}{'compiled ms':>13}{'ratio':>8}")
    with torch.inference_mode():
        for n in sizes:
            call = lambda: side.side_features_of([("symbols", modulation[:n]), ("cancel", interference[:n])])  # noqa: E731
            times = {}
            for compiled in (False, True):
                side.COMPILED = compiled
                times[compiled] = cpu_seconds(call, 15)
            print(f"{n:>4}{1e3 * times[False]:>11.2f}{1e3 * times[True]:>13.2f}{times[False] / times[True]:>7.2f}x")
    side.COMPILED = True


def decisions(manifest_path: str, exits: dict[str, tuple[int, ...]]) -> None:
    manifest = read_manifest(manifest_path)
    encoder = load_encoder()
    for task, ks in exits.items():
        info = manifest["tasks"][task]
        heads = {h["exit"]: load_head(h["path"], h["sha256"])[0] for h in task_heads(manifest, task, manifest_path)
                 if h["exit"] in ks}
        test = info["splits"]["test"]
        data = generate(task, test["n"], test["seed"])
        labels = {}
        for compiled in (False, True):
            side.COMPILED = compiled
            with torch.inference_mode():
                labels[compiled] = {k: p.label for k, p in exit_predictions(encoder, heads, data.x).items()}
        high = data.snr_db >= 10
        for k in ks:
            a, b = labels[False][k], labels[True][k]
            print(f"{task} exit {k}: decisions agree on {100 * np.mean(a == b):.2f} % of {len(a)} test frames; accuracy "
                  f"torch {100 * np.mean(a == data.y):.2f} %, compiled {100 * np.mean(b == data.y):.2f} % "
                  f"(SNR >= 10 dB: {100 * np.mean((a == data.y)[high]):.2f}, {100 * np.mean((b == data.y)[high]):.2f} %)")
    side.COMPILED = True


def engine(descriptor_path: str) -> None:
    descriptor = load_descriptor(descriptor_path)
    encoder = load_encoder(descriptor.encoder.checkpoint, "cpu")
    table = build_table(descriptor, encoder)
    frames = sample_requests(list(table), 96)
    batch = descriptor.batching.max_batch
    served = EarlyExitEngine(encoder, Metrics())
    real = runner.side_features_of

    def free(wanted):
        return [torch.zeros(len(f), side.side_width(kind, f.shape[1:])) for kind, f in wanted]

    modes = {"torch": (False, real), "compiled": (True, real), "free": (True, free)}
    early_exit_pass(served, table, frames[: 2 * batch], batch)
    times: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
    for _ in range(4):
        for mode, (compiled, features) in modes.items():
            side.COMPILED, runner.side_features_of = compiled, features
            early = cpu_seconds(lambda: early_exit_pass(served, table, frames, batch), 1)
            naive = cpu_seconds(lambda: _naive(encoder, table, frames, batch), 1)
            times[mode].append((early, naive))
    side.COMPILED, runner.side_features_of = True, real
    print("(free: early exit's side features cost nothing; naive serving still computes its own)")
    for mode, rounds in times.items():
        early = statistics.median(e for e, _ in rounds)
        ratio = statistics.median(n / e for e, n in rounds)
        print(f"{mode:>9}: early exit {len(frames) / early:7.1f} frames/s, speed-up against naive {ratio:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,2,4,8,32")
    parser.add_argument("--descriptor", default="descriptors/default.yaml")
    parser.add_argument("--manifest", default="heads/manifest.yaml")
    parser.add_argument("--decisions", action="store_true", help="agreement of the shipped heads' decisions (~1 min)")
    parser.add_argument("--engine", action="store_true", help="early exit and naive serving with each path (~2 min)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    per_call([int(s) for s in args.sizes.split(",")])
    if args.decisions:
        decisions(args.manifest, {"modulation": (3, 5), "interference": (4,)})
    if args.engine:
        engine(args.descriptor)


if __name__ == "__main__":
    main()
