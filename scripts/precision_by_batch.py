"""Engine time per batch at each precision the CPU allows, by batch size: mixed batches of the default
descriptor's tasks (round-robin, as the simulated nodes send them), one torch thread, thread CPU time,
the precisions in turns, best of three rounds. `xapp bench --precision` gives throughput and decision
agreement at the descriptor's max_batch; this shows where a precision pays.

    python scripts/precision_by_batch.py [--sizes 1,2,4,7,16,32]
"""

from __future__ import annotations

import argparse
import time

import torch

from xapp.config.descriptor import load_descriptor
from xapp.engine.build import build_table
from xapp.engine.precision import PRECISIONS, PrecisionError
from xapp.engine.runner import EarlyExitEngine
from xapp.harness.bench import bench_frames
from xapp.model import load_encoder
from xapp.ops.metrics import Metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--descriptor", default="descriptors/default.yaml")
    parser.add_argument("--sizes", default="1,2,4,7,16,32")
    args = parser.parse_args()
    torch.set_num_threads(1)
    descriptor = load_descriptor(args.descriptor)
    encoder = load_encoder(descriptor.encoder.checkpoint, "cpu")
    table = build_table(descriptor, encoder)
    engines = {}
    for precision in PRECISIONS:
        try:
            engines[precision] = EarlyExitEngine(encoder, Metrics(), precision)
        except PrecisionError as exc:
            print(f"{precision}: {exc}")
    frames = bench_frames(list(table), 96)
    print(f"{'batch':>6}" + "".join(f"{p + ' ms':>11}" for p in engines) + "".join(f"{'fp32/' + p:>11}" for p in engines if p != "fp32"))
    for size in (int(s) for s in args.sizes.split(",")):
        batches = [frames[i:i + size] for i in range(0, len(frames) - size + 1, size)][:max(8, 96 // size)]
        best = {p: float("inf") for p in engines}
        for _ in range(3):
            for precision, engine in engines.items():
                engine.run(batches[0], table, lambda _: None)
                start = time.thread_time()
                for batch in batches:
                    engine.run(batch, table, lambda _: None)
                best[precision] = min(best[precision], (time.thread_time() - start) / len(batches))
        print(f"{size:>6}" + "".join(f"{1e3 * best[p]:>11.2f}" for p in engines)
              + "".join(f"{best['fp32'] / best[p]:>10.2f}x" for p in engines if p != "fp32"))


if __name__ == "__main__":
    main()
