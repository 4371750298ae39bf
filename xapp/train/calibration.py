"""Confidence that means what it says: each head's logits are divided by a temperature fitted on its
validation split (temperature scaling, Guo et al. 2017), so that decisions of confidence c are right
about c of the time. The class each head picks does not change, only how sure it says it is: what a
control loop, a task's `control.min_confidence` and the dynamic exit policies act on.

`xapp heads train` calibrates every head it keeps; `xapp heads calibrate DIR` calibrates heads
trained before (idempotent: it refits from the raw logits), or a copy of them on an operator's own
labelled recording (`--data`), for a site whose frames differ from ours."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import torch
from torch.nn import functional as F

from xapp.model import Encoder, Head
from xapp.model.heads import read_head

CALIBRATION_BINS = 15
# Confidence bounds at which the report and `xapp eval` give accuracy and coverage: what a control loop
# (or a task's control.min_confidence) gets by acting only on decisions at least this sure.
CONFIDENCE_LEVELS = (0.5, 0.7, 0.8, 0.9, 0.95)
# Temperatures tried, log-spaced: from sharpening 5x to flattening 5x (the shipped heads need 0.9-2.1).
TEMPERATURES = np.exp(np.linspace(np.log(0.2), np.log(5.0), 321))


def calibration_error(correct: np.ndarray, confidence: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Expected calibration error: over equal-width confidence bins, the frame-weighted mean of
    |accuracy - mean confidence|. 0 when a decision of confidence c is right with probability c."""
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    gap = 0.0
    for b in np.unique(which):
        in_bin = which == b
        gap += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(gap)


def by_confidence(correct: np.ndarray, confidence: np.ndarray, levels=CONFIDENCE_LEVELS) -> list[dict]:
    """Per confidence bound: the share of decisions at least that sure, and their accuracy (None if none)."""
    out = []
    for level in levels:
        sure = confidence >= level
        out.append({"min_confidence": level, "coverage": float(sure.mean()),
                    "accuracy": float(correct[sure].mean()) if sure.any() else None})
    return out


def confidence_scores(correct: np.ndarray, confidence: np.ndarray) -> dict:
    """What the report and `xapp eval` say of a head's confidence on scored frames: its calibration
    error, and the accuracy and coverage at each of CONFIDENCE_LEVELS."""
    return {"calibration_error": calibration_error(correct, confidence), "by_confidence": by_confidence(correct, confidence)}


def logits_error(logits: torch.Tensor, y: np.ndarray) -> float:
    """calibration_error of the decisions these logits make on labels y."""
    confidence, label = logits.float().softmax(-1).max(-1)
    return calibration_error(label.numpy() == y, confidence.numpy())


def fit_temperature(logits: torch.Tensor, y: np.ndarray) -> float:
    """The temperature (of TEMPERATURES) whose scaled logits have the lowest cross-entropy on labels y."""
    logits, target = logits.float(), torch.from_numpy(np.asarray(y))
    losses = [F.cross_entropy(logits / t, target).item() for t in TEMPERATURES]
    return float(TEMPERATURES[int(np.argmin(losses))])


def calibrate(head: Head, val_logits: torch.Tensor, y_val: np.ndarray) -> dict:
    """Set `head.temperature` from its raw (temperature 1) validation logits; returns what the manifest
    records: the temperature and the validation calibration error before and after."""
    head.temperature = fit_temperature(val_logits, y_val)
    return {"temperature": head.temperature, "val_calibration_error_uncalibrated": logits_error(val_logits, y_val),
            "val_calibration_error": logits_error(val_logits / head.temperature, y_val)}


WINDOW_EXPONENTS = np.round(np.linspace(0.0, 1.0, 101), 2)


def windows_error(head: Head, captures: Mapping[int, tuple[torch.Tensor, np.ndarray]]) -> dict[int, float]:
    """calibration_error of the head's decisions on captures {windows: (their windows' logits, labels)}."""
    return {n: logits_error(head.fuse_windows(logits, n), y) for n, (logits, y) in captures.items()}


def calibrate_windows(head: Head, captures: Mapping[int, tuple[torch.Tensor, np.ndarray]]) -> dict:
    """Set `head.window_exponent` (of WINDOW_EXPONENTS) to the lowest cross-entropy of its decisions on
    validation captures {windows: (logits of each capture's windows in a row, capture labels)}, over all
    window counts together; returns what the manifest records: the exponent and the calibration error at
    each count with it and with the mean (exponent 1)."""
    targets = {n: torch.from_numpy(np.asarray(y)) for n, (_, y) in captures.items()}
    log_p = {n: logits.float().log_softmax(-1).reshape(-1, n, logits.shape[-1]).sum(1) for n, (logits, _) in captures.items()}
    losses = [sum(F.cross_entropy(log_p[n] / n ** a, targets[n]).item() for n in captures) for a in WINDOW_EXPONENTS]
    head.window_exponent = 1.0
    before = windows_error(head, captures)
    head.window_exponent = float(WINDOW_EXPONENTS[int(np.argmin(losses))])
    return {"window_exponent": head.window_exponent,
            "val_window_calibration_error": {n: e for n, e in windows_error(head, captures).items()},
            "val_window_calibration_error_mean_rule": before}


@torch.inference_mode()
def exit_logits(encoder: Encoder, heads: dict[int, Head], x: np.ndarray, chunk: int = 128) -> dict[int, torch.Tensor]:
    """Each head's logits on frames x (complex [N, antennas, samples]), all exits in one encoder pass per chunk."""
    exits = sorted(heads)
    out: dict[int, list[torch.Tensor]] = {k: [] for k in exits}
    for start in range(0, len(x), chunk):
        batch = torch.from_numpy(np.ascontiguousarray(x[start : start + chunk]))
        for k, h in encoder(batch, exits).items():
            out[k].append(read_head(heads[k], h, batch).float())
    return {k: torch.cat(v) for k, v in out.items()}


class Predictions(NamedTuple):
    label: np.ndarray  # the head's class per frame
    confidence: np.ndarray  # its top softmax probability, as the decision carries it


def exit_predictions(encoder: Encoder, heads: dict[int, Head], x: np.ndarray, chunk: int = 128,
                     windows: int = 1) -> dict[int, Predictions]:
    """Each head's decisions on frames x: class and confidence per frame. With `windows` > 1, each run of
    `windows` consecutive frames is one capture, decided once from their log-probabilities as the
    engine does (`Head.fuse_windows`)."""
    out = {}
    for k, logits in exit_logits(encoder, heads, x, chunk).items():
        if windows > 1:
            logits = heads[k].fuse_windows(logits, windows)
        confidence, label = logits.softmax(-1).max(-1)
        out[k] = Predictions(label.numpy(), confidence.numpy())
    return out
