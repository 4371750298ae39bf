"""Acting only on sure decisions: the shipped heads against the best baselines at equal coverage.

A control loop that acts only on confident decisions gets the accuracy of the most confident share of
frames. This script compares that accuracy, at shares of 25, 50 and 75 %, for the shipped heads at the
default exits and for each task's best baseline in `docs/baselines.json` (modulation: 27 hand features
+ MLP; interference: the STFT CNN), retrained here as `xapp baselines` trains them (the heads' 50,000
training frames, seed 0, 20 epochs) and calibrated like the heads (a temperature fitted on the same
validation split). Our test split and the cross-check, 4,000 frames each. About 11 minutes on two cores.

    python scripts/selective_baselines.py --out docs/hybrid/selective.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from xapp.config import load_descriptor
from xapp.config.manifest import head_at, read_manifest
from xapp.model import load_encoder, load_head
from xapp.train.baselines.classical import FeatureMLP, feature_set_for
from xapp.train.baselines.frames import crosscheck_frames, split_frames
from xapp.train.baselines.networks import as_channels, network_for, train_network
from xapp.train.calibration import calibration_error, exit_logits, fit_temperature

ROOT = Path(__file__).resolve().parent.parent
SHARES = (25, 50, 75)  # percent of frames acted on, the most confident first


def selective(logits: torch.Tensor, y: np.ndarray) -> dict:
    confidence, label = (t.numpy() for t in logits.softmax(-1).max(-1))
    correct = label == y
    order = np.argsort(-confidence, kind="stable")
    return {"accuracy": float(correct.mean()), "calibration_error": calibration_error(correct, confidence),
            **{f"top_{share}": float(correct[order[: len(order) * share // 100]].mean()) for share in SHARES}}


def scored(logits_of: Callable[[np.ndarray], torch.Tensor], sets: dict) -> dict:
    """Fit a temperature on the validation split, then score every other set."""
    temperature = fit_temperature(logits_of(sets["val"].x), sets["val"].y)
    return {"temperature": temperature, **{name: selective(logits_of(d.x) / temperature, np.asarray(d.y))
                                            for name, d in sets.items() if name != "val"}}


def hand_features(sets: dict, classes: int) -> Callable[[np.ndarray], torch.Tensor]:
    train = sets["train"]
    model = FeatureMLP(classes, feature_set_for(train.task, train.x.shape[1]), seed=0).fit(train.x, train.y)

    @torch.inference_mode()
    def logits(x: np.ndarray) -> torch.Tensor:
        return model.net(torch.from_numpy((model.feature_set.extract(x) - model.mean) / model.std)).double()

    return logits


def stft_cnn(sets: dict, classes: int) -> Callable[[np.ndarray], torch.Tensor]:
    train = sets["train"]
    net = train_network(network_for("interference", train.x.shape[1], classes), train.x, train.y, 20, 0)

    @torch.inference_mode()
    def logits(x: np.ndarray) -> torch.Tensor:
        return torch.cat([net(as_channels(x[i:i + 512])).double() for i in range(0, len(x), 512)])

    return logits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "hybrid" / "selective.json")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    manifest_path = ROOT / "heads" / "manifest.yaml"
    manifest = read_manifest(manifest_path)
    descriptor = load_descriptor(ROOT / "descriptors" / "default.yaml")
    encoder = load_encoder(descriptor.encoder.checkpoint)
    result = {"command": "python scripts/selective_baselines.py", "shares_percent": list(SHARES), "tasks": {}}
    for task, baseline, name in (("modulation", hand_features, "27 hand features + MLP"),
                                 ("interference", stft_cnn, "2-D CNN on the STFT log power")):
        sets = {split: split_frames(manifest, task, split) for split in ("train", "val", "test")}
        sets["crosscheck"] = crosscheck_frames(task, len(sets["test"].y))
        k = descriptor.tasks[task].exit
        entry = head_at(manifest, task, k, manifest_path)
        head = load_head(entry["path"], entry["sha256"])[0]
        heads = {"exit": k, **{split: selective(exit_logits(encoder, {k: head}, d.x)[k], np.asarray(d.y))
                               for split, d in sets.items() if split in ("test", "crosscheck")}}
        classes = len(manifest["tasks"][task]["classes"])
        result["tasks"][task] = {"head": heads, "baseline": {"method": name, **scored(baseline(sets, classes), sets)}}
        for who in ("head", "baseline"):
            r = result["tasks"][task][who]
            print(f"{task:<13}{who:<9}" + "  ".join(
                f"{split} " + " ".join(f"top{s} {100 * r[split][f'top_{s}']:.1f}" for s in SHARES)
                for split in ("test", "crosscheck")), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
