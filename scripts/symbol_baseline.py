"""The classical modulation baseline given the blind symbol statistics too: is the trunk still needed?

The `symbols` side features (xapp/model/side.py: symbols recovered blind, their fits to square
constellations, their amplitude histogram) lift the modulation heads. A classical classifier can read
them as well, so this script trains the baseline's MLP (`xapp baselines`' FeatureMLP: 128-128, seed 0,
on the heads' 50,000 training frames) on the 27 hand features beside them, and scores it on our test
split and the cross-check (4,000 frames each), as `xapp baselines` scores the shipped baselines. About
4 minutes on two cores.

    python scripts/symbol_baseline.py --out docs/hybrid/symbol_baseline.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from xapp.config.manifest import read_manifest
from xapp.config.shipped import default_manifest
from xapp.model.side import LINE_POWERS, side_flops
from xapp.train.baselines.classical import HAND_FEATURES, FeatureMLP, FeatureSet
from xapp.train.baselines.frames import crosscheck_frames, scores, split_frames
from xapp.train.head_training import cache_side


def symbol_statistics(x: np.ndarray) -> np.ndarray:
    """The `symbols` side features without the spectral lines (the hand features hold those)."""
    return cache_side("symbols", x)[:, len(LINE_POWERS):].numpy()


def hand_and_symbols(x: np.ndarray) -> np.ndarray:
    hand = HAND_FEATURES.extract(x)
    return np.concatenate([hand, symbol_statistics(x).astype(hand.dtype)], axis=1)


HAND_AND_SYMBOLS = FeatureSet(
    f"{HAND_FEATURES.description} beside the blind symbol statistics", hand_and_symbols,
    lambda antennas, samples: HAND_FEATURES.flops(antennas, samples) + side_flops("symbols", (antennas, samples)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    manifest = read_manifest(default_manifest())
    train, test = split_frames(manifest, "modulation", "train"), split_frames(manifest, "modulation", "test")
    model = FeatureMLP(len(train.classes), HAND_AND_SYMBOLS, seed=0).fit(train.x, train.y)
    result = {"method": model.description, "gflops": model.flops(1, train.x.shape[2]) / 1e9,
              "train_frames": len(train.y),
              **{name: scores(model.predict(d.x), d) for name, d in
                 (("ours", test), ("crosscheck", crosscheck_frames("modulation", len(test.y))))}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
