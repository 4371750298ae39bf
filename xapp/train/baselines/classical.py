"""Classical baselines: the 16-point DFT beam argmax, the covariance eigenvalue LOS test with a
threshold fitted on training frames, and hand features with a small MLP."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .features import feature_flops, features

ANTENNAS = 16


def dft_beam(x: np.ndarray) -> np.ndarray:
    """Beam index per frame [N, 16, T]: the DFT beam with most energy; after fftshift, index b holds
    spatial frequency (b - 8)/16, i.e. beam b steering to sin(theta) = (b - 8)/8."""
    energy = np.sum(np.abs(np.fft.fftshift(np.fft.fft(x, axis=1), axes=1)) ** 2, axis=2)
    return energy.argmax(axis=1)


def dft_beam_flops(antennas: int, samples: int) -> int:
    """A radix-2 FFT across the array per sample (5 A log2 A), |.|^2 (3) and the sum over time (2)."""
    return samples * int(5 * antennas * np.log2(antennas)) + 5 * antennas * samples


def principal_share(x: np.ndarray) -> np.ndarray:
    """Largest eigenvalue of the spatial covariance over its trace, per frame [N, A, T]: near 1 when
    one (line-of-sight) direction dominates."""
    cov = np.einsum("nat,nbt->nab", x, np.conj(x)) / x.shape[2]
    eig = np.linalg.eigvalsh(cov)
    return eig[:, -1] / np.maximum(eig.sum(axis=1), 1e-12)


def covariance_test_flops(antennas: int, samples: int) -> int:
    """Covariance (8 real FLOPs per complex MAC) plus a Hermitian eigen-decomposition (~10 A^3)."""
    return 8 * antennas * antennas * samples + 10 * antennas**3


@dataclass
class Threshold:
    """Predict class `above` when the statistic exceeds `value`, else the other of two classes."""

    value: float
    above: int

    @classmethod
    def fit(cls, statistic: np.ndarray, y: np.ndarray) -> Threshold:
        candidates = np.unique(statistic)
        best = (-1.0, 0.0, 0)
        for above in (0, 1):
            for value in candidates[:: max(1, len(candidates) // 512)]:
                accuracy = np.mean(np.where(statistic > value, above, 1 - above) == y)
                best = max(best, (accuracy, float(value), above))
        return cls(best[1], best[2])

    def predict(self, statistic: np.ndarray) -> np.ndarray:
        return np.where(statistic > self.value, self.above, 1 - self.above)


class FeatureMLP:
    """Standardised hand features into a 2-hidden-layer MLP (full-batch Adam, weight decay)."""

    def __init__(self, classes: int, hidden: int = 128, epochs: int = 400, seed: int = 0):
        self.classes, self.hidden, self.epochs, self.seed = classes, hidden, epochs, seed

    def fit(self, x: np.ndarray, y: np.ndarray) -> FeatureMLP:
        f = features(x)
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

    @torch.inference_mode()
    def predict(self, x: np.ndarray) -> np.ndarray:
        f = torch.from_numpy((features(x) - self.mean) / self.std)
        return self.net(f).argmax(dim=1).numpy()

    def flops(self, samples: int) -> int:
        layers = [m for m in self.net if isinstance(m, nn.Linear)]
        return feature_flops(samples) + sum(2 * m.in_features * m.out_features for m in layers)
