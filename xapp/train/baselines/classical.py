"""Classical baselines: the 16-point DFT beam argmax, and hand features (single-antenna or spatial)
with a small MLP."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from xapp.data.spatial import beam_energy
from xapp.model.side import IMPAIRMENT_FEATURES, hand_feature_flops, side_flops
from xapp.train.head_training import cache_side

from .features import NAMES, SPATIAL_NAMES, features

ANTENNAS = 16


def dft_beam(x: np.ndarray) -> np.ndarray:
    """Beam index per frame [N, 16, T]: the DFT beam with most energy; after fftshift, index b holds
    spatial frequency (b - 8)/16, i.e. beam b steering to sin(theta) = (b - 8)/8."""
    return beam_energy(x).argmax(axis=1)


def dft_beam_flops(antennas: int, samples: int) -> int:
    """A radix-2 FFT across the array per sample (5 A log2 A), |.|^2 (3) and the sum over time (2)."""
    return samples * int(5 * antennas * np.log2(antennas)) + 5 * antennas * samples


@dataclass(frozen=True)
class FeatureSet:
    """What a feature baseline computes from a frame, in words, as a function, and its FLOPs per
    frame of (antennas, samples)."""

    description: str
    extract: Callable[[np.ndarray], np.ndarray]
    flops: Callable[[int, int], int]


HAND_FEATURES = FeatureSet(
    f"{len(NAMES)} hand features (cumulants, spectral lines, envelope/frequency/bandwidth/short-time stats)",
    features, lambda antennas, samples: hand_feature_flops(samples))
SPATIAL_FEATURES = FeatureSet(
    f"{len(SPATIAL_NAMES)} spatial features (covariance eigenvalues, coherence per antenna lag, sorted DFT beam "
    "spectrum)", lambda x: cache_side("spatial", x).numpy(),
    lambda antennas, samples: int(side_flops("spatial", (antennas, samples))))


HAND_AND_IMPAIRMENTS = FeatureSet(
    f"{len(NAMES)} hand features and {IMPAIRMENT_FEATURES} transmitter-impairment statistics (LO leakage, IQ "
    "imbalance, phase noise, PA compression and AM/PM, read past the channel)",
    lambda x: np.concatenate([features(x), cache_side("impairments", x).numpy()], axis=1).astype(np.float32),
    lambda antennas, samples: hand_feature_flops(samples) + int(side_flops("impairments", (antennas, samples))))
HARDWARE_TASKS = ("fingerprint",)  # tasks whose classes differ only in the transmitter's hardware


def feature_set_for(task: str, antennas: int) -> FeatureSet:
    """The classical features of a task's frames: spatial ones for arrays; hand features for single-antenna
    frames, and beside them the transmitter's impairments where only the hardware tells classes apart."""
    if antennas > 1:
        return SPATIAL_FEATURES
    return HAND_AND_IMPAIRMENTS if task in HARDWARE_TASKS else HAND_FEATURES


class FeatureMLP:
    """Standardised features into a 2-hidden-layer MLP (full-batch Adam, weight decay)."""

    def __init__(self, classes: int, feature_set: FeatureSet = HAND_FEATURES, hidden: int = 128, epochs: int = 400,
                 seed: int = 0):
        self.classes, self.feature_set, self.hidden, self.epochs, self.seed = classes, feature_set, hidden, epochs, seed

    @property
    def network(self) -> str:
        return f"MLP {self.hidden}-{self.hidden}"

    @property
    def description(self) -> str:
        return f"{self.feature_set.description} + {self.network}"

    def fit(self, x: np.ndarray, y: np.ndarray) -> FeatureMLP:
        return self.fit_features(self.feature_set.extract(x), y)

    def fit_features(self, f: np.ndarray, y: np.ndarray) -> FeatureMLP:
        """Fit on features already extracted (rows of `feature_set.extract`, or any other [N, W] array)."""
        self.mean, self.std = f.mean(axis=0), f.std(axis=0) + 1e-6
        torch.manual_seed(self.seed)
        self.net = nn.Sequential(nn.Linear(f.shape[1], self.hidden), nn.ReLU(), nn.Linear(self.hidden, self.hidden),
                                 nn.ReLU(), nn.Linear(self.hidden, self.classes))
        inputs, targets = torch.from_numpy((f - self.mean) / self.std), torch.from_numpy(y)
        optimiser = torch.optim.AdamW(self.net.parameters(), lr=3e-3, weight_decay=1e-3)
        for _ in range(self.epochs):
            optimiser.zero_grad()
            nn.functional.cross_entropy(self.net(inputs), targets).backward()
            optimiser.step()
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.predict_features(self.feature_set.extract(x))

    @torch.inference_mode()
    def predict_features(self, f: np.ndarray) -> np.ndarray:
        return self.net(torch.from_numpy((f - self.mean) / self.std)).argmax(dim=1).numpy()

    def flops(self, antennas: int, samples: int) -> int:
        layers = [m for m in self.net if isinstance(m, nn.Linear)]
        return self.feature_set.flops(antennas, samples) + sum(2 * m.in_features * m.out_features for m in layers)
