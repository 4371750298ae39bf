"""Engine time per batch with the side features on the engine's thread against a thread of their own,
for mixed batches of the default descriptor's tasks (round-robin, as the simulated nodes send them).
One torch thread, the engines in turns within each round, median of five rounds.
`engines_by_batch` serves other engine A/B scripts (scripts/precision_by_batch.py).

    python scripts/side_thread_ab.py [--sizes 1,2,4,8,16,32]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping

import numpy as np
import torch

from xapp.config.descriptor import load_descriptor
from xapp.engine.build import build_table
from xapp.engine.runner import EarlyExitEngine
from xapp.engine.choose import sample_requests
from xapp.model import Encoder, load_encoder
from xapp.ops.metrics import Metrics

ROUNDS = 5


def engines_by_batch(descriptor_path: str, sizes: str, make_engines: Callable[[Encoder], Mapping[str, EarlyExitEngine]]
                     ) -> None:
    """Print each engine's milliseconds per batch at each batch size (one torch thread, the engines in
    turns, median of ROUNDS rounds), and the first engine's time over each other's."""
    torch.set_num_threads(1)
    descriptor = load_descriptor(descriptor_path)
    encoder = load_encoder(descriptor.encoder.checkpoint, "cpu")
    table = build_table(descriptor, encoder)
    engines = make_engines(encoder)
    frames = sample_requests(list(table), 96)
    sink: list = []
    first, *others = engines
    print(f"{'batch':>6}" + "".join(f"{name + ' ms':>16}" for name in engines)
          + "".join(f"{first + ' / ' + name:>22}" for name in others))
    for size in (int(s) for s in sizes.split(",")):
        batches = [frames[i:i + size] for i in range(0, len(frames) - size + 1, size)][:max(8, 128 // size)]
        times: dict[str, list[float]] = {name: [] for name in engines}
        for engine in engines.values():
            for batch in batches[:2]:
                engine.run(batch, table, sink.extend)
        for _ in range(ROUNDS):
            for name, engine in engines.items():
                start = time.perf_counter()
                for batch in batches:
                    engine.run(batch, table, sink.extend)
                times[name].append(1e3 * (time.perf_counter() - start) / len(batches))
        medians = {name: float(np.median(v)) for name, v in times.items()}
        print(f"{size:>6}" + "".join(f"{m:>16.2f}" for m in medians.values())
              + "".join(f"{medians[first] / medians[name]:>21.2f}x" for name in others), flush=True)
    for engine in engines.values():
        engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--descriptor", default="descriptors/default.yaml")
    parser.add_argument("--sizes", default="1,2,4,8,16,32")
    args = parser.parse_args()
    engines_by_batch(args.descriptor, args.sizes, lambda encoder: {
        "serial": EarlyExitEngine(encoder, Metrics()), "side thread": EarlyExitEngine(encoder, Metrics(), side_thread=True)})


if __name__ == "__main__":
    main()
