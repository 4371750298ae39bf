"""Engine time per batch at each precision the CPU allows, by batch size: mixed batches of the default
descriptor's tasks, as `scripts/side_thread_ab.py` times them (one torch thread, the precisions in
turns, median of five rounds). `xapp bench --precision` gives throughput and decision agreement at the
descriptor's max_batch; this shows where a precision pays.

    python scripts/precision_by_batch.py [--sizes 1,2,4,7,16,32]
"""

from __future__ import annotations

import argparse

from side_thread_ab import engines_by_batch
from xapp.engine.precision import PRECISIONS, PrecisionError
from xapp.engine.runner import EarlyExitEngine
from xapp.model import Encoder
from xapp.ops.metrics import Metrics


def precision_engines(encoder: Encoder) -> dict[str, EarlyExitEngine]:
    engines = {}
    for precision in PRECISIONS:  # fp32 first: the others' speed-ups are against it
        try:
            engines[precision] = EarlyExitEngine(encoder, Metrics(), precision)
        except PrecisionError as exc:
            print(f"{precision}: {exc}")
    return engines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--descriptor", default="descriptors/default.yaml")
    parser.add_argument("--sizes", default="1,2,4,7,16,32")
    args = parser.parse_args()
    engines_by_batch(args.descriptor, args.sizes, precision_engines)


if __name__ == "__main__":
    main()
