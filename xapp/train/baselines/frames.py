"""The frames every comparison in the report uses: the heads' splits of our generators (from the
heads manifest) and the independent cross-check test set; accuracy overall and at high SNR."""

from __future__ import annotations

import hashlib

import numpy as np

from xapp import crosscheck
from xapp.data import TaskData, generate
from xapp.train.calibration import confidence_scores

CROSSCHECK_SEED = 9100  # never a seed of ours: the cross-check is a different source anyway
HIGH_SNR_DB = 10.0


def split_frames(manifest: dict, task: str, split: str) -> TaskData:
    info = manifest["tasks"][task]["splits"][split]
    return generate(task, info["n"], info["seed"])


def crosscheck_frames(task: str, n: int) -> TaskData | None:
    """The cross-check test set of `task` (None where the cross-check does not make that task)."""
    return crosscheck.generate(task, n, CROSSCHECK_SEED) if task in crosscheck.TASKS else None


def fingerprint(data: TaskData) -> str:
    """sha256 (first 16 hex) of the frames and labels, to tell whether cached results used these frames."""
    digest = hashlib.sha256(np.ascontiguousarray(data.x).tobytes())
    digest.update(np.ascontiguousarray(data.y).tobytes())
    return digest.hexdigest()[:16]


def scores(predicted: np.ndarray, data: TaskData, confidence: np.ndarray | None = None) -> dict:
    """Accuracy over all frames and over frames at SNR >= HIGH_SNR_DB; with the decisions' `confidence`
    also what acting on confident decisions only gets, and how far confidence is from accuracy."""
    correct = np.asarray(predicted) == data.y
    high = data.snr_db >= HIGH_SNR_DB
    out = {"accuracy": float(correct.mean()), "n": int(len(correct)),
           "accuracy_high_snr": float(correct[high].mean()) if high.any() else None, "n_high_snr": int(high.sum())}
    if confidence is not None:
        out |= confidence_scores(correct, confidence)
    return out
