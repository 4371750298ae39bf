"""Do the trunk's exit and the classical features carry the same information? One task, one exit:
the same MLP as the classical baseline (`FeatureMLP`, same training) on three inputs, trained on the
heads' training split and scored on our test split and the cross-check set:

  - the trunk alone: the normalised mean of the exit's tokens (what a mean-pooled head reads);
  - the classical features alone (hand features for single-antenna tasks, spatial ones for arrays);
  - both, side by side.

If "both" beats each alone, the two are complementary, and a head that read both would decide better
than either. With --groups (single-antenna tasks), also the trunk beside each group of hand features
alone, to see which carry what the trunk lacks. Writes one JSON object per run (--out) beside the
printed table.

    python scripts/hybrid_heads_check.py --task modulation --exit 4 --out docs/hybrid/modulation.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from xapp.config.manifest import read_manifest
from xapp.config.shipped import default_manifest
from xapp.model import load_encoder
from xapp.train.baselines.classical import HAND_FEATURES, FeatureMLP, feature_set_for
from xapp.train.baselines.frames import crosscheck_frames, scores, split_frames
from xapp.train.baselines.run import first
from xapp.train.head_training import cache_features

HAND_GROUPS = {  # column ranges of xapp.train.baselines.features.NAMES
    "cumulants": slice(0, 6), "spectral lines": slice(6, 10), "envelope and frequency": slice(10, 17),
    "spectrum shape": slice(17, 21), "short-time": slice(21, 27),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", required=True)
    parser.add_argument("--exit", type=int, required=True)
    parser.add_argument("--train", type=int, default=0, help="first N training frames (default 0: all)")
    parser.add_argument("--groups", action="store_true", help="also the trunk beside each group of hand features")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    manifest = read_manifest(default_manifest())
    encoder = load_encoder().eval()
    train = split_frames(manifest, args.task, "train")
    sets = {"train": first(train, args.train or None), "ours": split_frames(manifest, args.task, "test")}
    other = crosscheck_frames(args.task, len(sets["ours"].y))
    if other:
        sets["crosscheck"] = other
    classical = feature_set_for(args.task, train.x.shape[1])
    start = time.time()
    trunk = {name: cache_features(encoder, d.x, [args.exit], 128, "mean", progress=False)[args.exit].numpy()
             for name, d in sets.items()}
    features = {name: classical.extract(d.x) for name, d in sets.items()}
    inputs = {"trunk": trunk, "classical": features,
              "both": {name: np.concatenate([trunk[name], features[name]], axis=1) for name in sets}}
    if args.groups and classical is HAND_FEATURES:
        inputs |= {f"trunk + {group}": {name: np.concatenate([trunk[name], features[name][:, columns]], axis=1)
                                        for name in sets} for group, columns in HAND_GROUPS.items()}
    network = FeatureMLP(len(train.classes)).network
    n = len(sets["train"].y)
    result = {"task": args.task, "exit": args.exit, "train_frames": n, "classical_features": classical.description,
              "model": network, "features_s": round(time.time() - start), "inputs": {}}
    print(f"{args.task} at exit {args.exit}, {n} training frames, {network} on each input:")
    for name, columns in inputs.items():
        model = FeatureMLP(len(train.classes)).fit_features(columns["train"], sets["train"].y)
        result["inputs"][name] = {s: scores(model.predict_features(columns[s]), d) for s, d in sets.items() if s != "train"}
        print(f"  {name:<32} " + "  ".join(f"{s} {100 * r['accuracy']:5.1f} % ({100 * r['accuracy_high_snr']:5.1f} % at high SNR)"
                                           for s, r in result["inputs"][name].items()))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
