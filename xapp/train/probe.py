"""Linear probe on frozen, mean-pooled tokens: the check that pre-training learned something a random
encoder does not have."""

from __future__ import annotations

import numpy as np
import torch

from xapp.data import generate
from xapp.model.checkpoint import load_encoder
from xapp.model.encoder import Encoder
from xapp.train.features import exit_states

PROBE_SEEDS = {"train": 101, "test": 202}


def probe_data(task: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames and labels; modulation keeps SNR >= 0 dB only (below it, no probe separates classes)."""
    if task != "modulation":
        data = generate(task, n, seed)
        return data.x, data.y
    data = generate(task, 2 * n + 64, seed)
    keep = np.flatnonzero(data.snr_db >= 0)[:n]
    return data.x[keep], data.y[keep]


def fit_linear(train: torch.Tensor, y_train: np.ndarray, test: torch.Tensor, y_test: np.ndarray,
               epochs: int = 300) -> float:
    """Multinomial logistic regression (standardised features, L2, full-batch Adam); test accuracy."""
    torch.manual_seed(0)
    train, test = train.float(), test.float()
    mean, std = train.mean(0), train.std(0) + 1e-6
    train, test = (train - mean) / std, (test - mean) / std
    y = torch.from_numpy(y_train).long()
    classes = int(max(y_train.max(), y_test.max())) + 1
    layer = torch.nn.Linear(train.shape[1], classes)
    opt = torch.optim.Adam(layer.parameters(), lr=0.01, weight_decay=1e-4)
    for _ in range(epochs):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(layer(train), y).backward()
        opt.step()
    with torch.no_grad():
        return float((layer(test).argmax(1).numpy() == y_test).mean())


def run_probe(checkpoint: str | None, exit_: int | None, tasks: list[str], n_train: int, n_test: int,
              device: str = "cpu") -> dict:
    pretrained = load_encoder(checkpoint, device)
    torch.manual_seed(0)
    random = Encoder(pretrained.cfg).eval().to(device)
    k = exit_ or pretrained.cfg.depth // 2
    results = {"exit": k, "train": n_train, "test": n_test, "tasks": {}}
    for task in tasks:
        x_tr, y_tr = probe_data(task, n_train, PROBE_SEEDS["train"])
        x_te, y_te = probe_data(task, n_test, PROBE_SEEDS["test"])
        scores = {}
        for name, enc in (("pretrained", pretrained), ("random", random)):
            f_tr = exit_states(enc, x_tr, [k], pool=True)[k]
            f_te = exit_states(enc, x_te, [k], pool=True)[k]
            scores[name] = fit_linear(f_tr, y_tr, f_te, y_te)
        results["tasks"][task] = scores
    return results


def format_probe_table(results: dict) -> str:
    rows = [f"linear probe at exit {results['exit']} ({results['train']} train / {results['test']} test frames)",
            f"{'task':<14}{'pre-trained':>12}{'random':>10}{'gain':>8}"]
    for task, r in results["tasks"].items():
        rows.append(f"{task:<14}{100 * r['pretrained']:>11.1f}%{100 * r['random']:>9.1f}%"
                    f"{100 * (r['pretrained'] - r['random']):>+8.1f}")
    return "\n".join(rows)
