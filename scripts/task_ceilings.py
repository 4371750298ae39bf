"""How far can a decision on our generators go? Three measurements behind issue 12's bars:

  beam          the label is the best of the 16 DFT beams of the noiseless frame, so the DFT argmax of
                the noisy frame is the label's own rule; what do learned classifiers reach when given
                exactly those 16 beam energies (an MLP, and a linear readout that could copy the argmax)?
  los           the classical spatial features with the baseline's MLP, on the noisy frames and on the
                same frames without noise; recall of line-of-sight frames by Rician K.
  interference  the shipped head at the default exit, accuracy by the interferer's power over noise.

Training frames are the heads' training split (first --train), test frames the heads' test split.

    python scripts/task_ceilings.py --out docs/hybrid/ceilings.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from xapp.config.manifest import read_manifest
from xapp.config.shipped import default_descriptor, default_manifest
from xapp.data import generate
from xapp.data.spatial import beam_energy
from xapp.model import load_encoder, load_head
from xapp.model.heads import read_head
from xapp.train.baselines.classical import SPATIAL_FEATURES, FeatureMLP
from xapp.train.baselines.frames import scores
from xapp.train.features import exit_states


def beam_energies(x: np.ndarray) -> np.ndarray:
    """log of each DFT beam's share of the frame's energy [N, 16]; argmax is the DFT baseline's beam."""
    energy = beam_energy(x)
    return np.log(energy / energy.sum(axis=1, keepdims=True)).astype(np.float32)


def linear_readout(f: np.ndarray, y: np.ndarray, classes: int, epochs: int = 400) -> nn.Linear:
    """Softmax regression on f, full batch; the identity with a large scale would reproduce argmax."""
    torch.manual_seed(0)
    layer = nn.Linear(f.shape[1], classes)
    opt = torch.optim.Adam(layer.parameters(), lr=1e-2)
    inputs, targets = torch.from_numpy(f), torch.from_numpy(y)
    for _ in range(epochs):
        opt.zero_grad()
        nn.functional.cross_entropy(layer(inputs), targets).backward()
        opt.step()
    return layer.eval()


def beam(manifest: dict, n: int) -> dict:
    splits = manifest["tasks"]["beam"]["splits"]
    train, test = (generate("beam", s["n"], s["seed"]) for s in (splits["train"], splits["test"]))
    f_train, f_test = beam_energies(train.x[:n]), beam_energies(test.x)
    mlp = FeatureMLP(16).fit_features(f_train, train.y[:n])
    readout = linear_readout(f_train, train.y[:n], 16)
    with torch.inference_mode():
        linear = readout(torch.from_numpy(f_test)).argmax(-1).numpy()
    return {"argmax (the DFT baseline)": scores(f_test.argmax(axis=1), test),
            f"{mlp.network} on the 16 beam energies": scores(mlp.predict_features(f_test), test),
            "linear readout of the 16 beam energies": scores(linear, test)}


def los(manifest: dict, n: int) -> dict:
    splits = manifest["tasks"]["los"]["splits"]
    train, test = (generate("los", s["n"], s["seed"], clean=True) for s in (splits["train"], splits["test"]))
    los_frames, k_db = test.y == test.classes.index("LOS"), test.meta["rician_k_db"]
    out = {}
    for name, frames in (("noisy frames", lambda d: d.x), ("the same frames without noise", lambda d: d.meta["clean"])):
        model = FeatureMLP(2, SPATIAL_FEATURES).fit(frames(train)[:n], train.y[:n])
        pred = model.predict(frames(test))
        bands = {f"K {lo} to {hi} dB": los_frames & (k_db >= lo) & (k_db < hi) for lo, hi in ((-5, 0), (0, 4), (4, 8), (8, 12))}
        recall = {band: float(np.mean(pred[rows] == test.y[rows])) for band, rows in bands.items()}
        out[name] = {**scores(pred, test), "LOS recall by Rician K": recall,
                     "NLOS recall": float(np.mean(pred[~los_frames] == test.y[~los_frames]))}
    return out


def interference(manifest: dict) -> dict:
    exit_ = yaml.safe_load(default_descriptor().read_text())["tasks"]["interference"]["exit"]
    split = manifest["tasks"]["interference"]["splits"]["test"]
    test = generate("interference", split["n"], split["seed"])
    head, _ = load_head(default_manifest().parent / "interference" / f"exit{exit_}.safetensors")
    h = exit_states(load_encoder().eval(), test.x, [exit_], 256, dtype=torch.float32)[exit_]
    with torch.inference_mode():
        ok = read_head(head, h, torch.from_numpy(test.x)).argmax(-1).numpy() == test.y
    inr = test.meta["inr_db"]
    by_inr = {f"INR {lo} to {hi} dB": float(ok[(inr >= lo) & (inr < hi)].mean()) for lo, hi in ((0, 6), (6, 12), (12, 18), (18, 25.1))}
    return {"exit": exit_, "accuracy": float(ok.mean()), "no interferer": float(ok[np.isnan(inr)].mean()), **by_inr}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=50000, help="training frames for the beam and los models")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    manifest = read_manifest(default_manifest())
    result = {"train_frames": args.train, "beam": beam(manifest, args.train), "los": los(manifest, args.train),
              "interference": interference(manifest)}
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
