"""Train and score every baseline on the heads' frames, both test sets; the result is cached in JSON
(`xapp baselines`) and read by `xapp report`."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from xapp.data import TaskData

from .classical import FeatureMLP, dft_beam, dft_beam_flops, feature_set_for
from .frames import crosscheck_frames, fingerprint, scores, signature, split_frames
from .networks import network_flops, network_for, predict, train_network

BASELINE_TASKS = ("modulation", "interference", "beam", "los", "fingerprint")  # every task with a baseline
Predictor = Callable[[np.ndarray], np.ndarray]


def classical(task: str, train: TaskData, seed: int) -> tuple[str, Predictor, int]:
    """(description, predictor, FLOPs per frame) of the task's classical baseline, fitted on train."""
    antennas, samples = train.x.shape[1:]
    if task == "beam":
        return "argmax of the 16 DFT beams' energy", dft_beam, dft_beam_flops(antennas, samples)
    model = FeatureMLP(len(train.classes), feature_set_for(task, antennas), seed=seed).fit(train.x, train.y)
    return model.description, model.predict, model.flops(antennas, samples)


def supervised(task: str, train: TaskData, epochs: int, seed: int) -> tuple[str, Predictor, int]:
    antennas, samples = train.x.shape[1:]
    net = train_network(network_for(task, antennas, len(train.classes)), train.x, train.y, epochs, seed)
    kind = ("CNN+LSTM (MCLDNN-like)" if task == "modulation" else
            "2-D CNN on the STFT log power" if antennas == 1 else "small CNN")  # as network_for chooses
    params = sum(p.numel() for p in net.parameters())
    return f"{kind}, {params:,} parameters, {epochs} epochs", lambda x: predict(net, x), network_flops(net, antennas, samples)


def first(data: TaskData, n: int | None) -> TaskData:
    return data if n is None or n >= len(data.y) else TaskData(data.task, data.x[:n], data.y[:n], data.classes,
                                                                data.snr_db[:n], {})


def run_baselines(manifest: dict, tasks: list[str], epochs: int, seed: int, train_frames: int | None = None,
                  log: Callable[[str], object] = print) -> dict:
    """Every baseline of every task, trained on the first `train_frames` of the heads' training split
    (all when None): accuracy on our test split and on the cross-check test set."""
    results: dict = {"epochs": epochs, "seed": seed, "train_frames": train_frames, "tasks": {}}
    for task in tasks:
        train = first(split_frames(manifest, task, "train"), train_frames)
        test = split_frames(manifest, task, "test")
        sets = {"ours": test, "crosscheck": crosscheck_frames(task, len(test.y))}
        entry = {"train_frames": len(train.y), "test_frames": len(test.y), "test_fingerprint": fingerprint(test),
                 "test_signature": signature(test),
                 "crosscheck_fingerprint": fingerprint(sets["crosscheck"]) if sets["crosscheck"] else None}
        for kind, build in (("classical", lambda: classical(task, train, seed)),
                            ("supervised", lambda: supervised(task, train, epochs, seed))):
            start = time.process_time()
            description, model, flops = build()
            entry[kind] = {"method": description, "gflops": flops / 1e9,
                           "train_cpu_s": round(time.process_time() - start, 1),
                           **{name: scores(model(d.x), d) if d else None for name, d in sets.items()}}
            log(f"{task:<13}{kind:<11}{flops / 1e6:>8.2f} MFLOP  ours {100 * entry[kind]['ours']['accuracy']:5.1f} %"
                + (f"  crosscheck {100 * entry[kind]['crosscheck']['accuracy']:5.1f} %" if sets["crosscheck"] else ""))
        results["tasks"][task] = entry
    return results
