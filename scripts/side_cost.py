"""What the heads' side features cost in time beside the trunk, and how close the shipped beam head is
to the DFT's argmax. One torch thread, batch 32, median of 30 runs; JSON on stdout.

    python scripts/side_cost.py > docs/hybrid/side_cost.json
"""

from __future__ import annotations

import json
import time

import numpy as np
import torch

from xapp.config.shipped import default_manifest
from xapp.data import generate
from xapp.data.spatial import beam_energy
from xapp.model import load_encoder, load_head
from xapp.model.heads import read_head
from xapp.model.side import side_features, side_features_of
from xapp.train.head_training import split_seed

BATCH = 32


def median_seconds(run, repeats: int = 30) -> float:
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    torch.set_num_threads(1)
    encoder = load_encoder().eval()
    out: dict[str, float] = {}
    with torch.inference_mode():
        tasks = (("modulation", ("lines", "hand", "symbols")), ("interference", ("cancel",)), ("beam", ("beams",)),
                 ("fingerprint", ("impairments",)), ("los", ("spatial",)))
        for task, kinds in tasks:
            x = torch.from_numpy(generate(task, BATCH, seed=9).x)
            for kind in kinds:
                out[f"{kind} us/frame"] = 1e6 * median_seconds(lambda: side_features(kind, x)) / BATCH
            h = encoder.tokens(x)
            out[f"{task} embed us/frame"] = 1e6 * median_seconds(lambda: encoder.tokens(x)) / BATCH
            out[f"{task} one block us/frame"] = 1e6 * median_seconds(lambda: encoder.blocks[0](h)) / BATCH
        # what the engine does with a batch mixing modulation and interference rows: one receiver pass
        xm = torch.from_numpy(generate("modulation", BATCH // 2, seed=9).x)
        xi = torch.from_numpy(generate("interference", BATCH // 2, seed=9).x)
        out["symbols and cancel, separate calls, us/frame"] = 1e6 * median_seconds(
            lambda: (side_features("symbols", xm), side_features("cancel", xi))) / BATCH
        out["symbols and cancel, one receiver pass, us/frame"] = 1e6 * median_seconds(
            lambda: side_features_of([("symbols", xm), ("cancel", xi)])) / BATCH
        test = generate("beam", 4000, split_seed(0, "test"))  # the shipped heads' beam test split
        head, _ = load_head(default_manifest().parent / "beam" / "exit1.safetensors")
        x = torch.from_numpy(test.x)
        predicted = torch.cat([read_head(head, encoder(x[i:i + 256], [1])[1], x[i:i + 256]).argmax(-1)
                               for i in range(0, len(x), 256)]).numpy()
    dft = beam_energy(test.x).argmax(axis=1)
    out["beam exit1 head agrees with DFT argmax"] = float((predicted == dft).mean())
    out["beam head acc"] = float((predicted == test.y).mean())
    out["dft acc"] = float((dft == test.y).mean())
    out["side_gain"] = float(head.side_gain)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
