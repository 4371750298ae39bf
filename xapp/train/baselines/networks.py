"""Small supervised end-to-end networks per task, trained on the same frames as the heads: a
CNN+LSTM in the spirit of MCLDNN for single-antenna frames, a small CNN across the array."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

SPECTROGRAM_SIZE = 64


def as_channels(x: np.ndarray) -> torch.Tensor:
    """complex [N, A, T] -> float [N, 2A, T] (real parts of every antenna, then imaginary)."""
    return torch.from_numpy(np.concatenate([x.real, x.imag], axis=1).astype(np.float32))


class ConvLSTM(nn.Module):
    """Strided 1-D convolutions over I/Q down to samples/32 steps, an LSTM over them, a linear classifier."""

    def __init__(self, classes: int, width: int = 32, hidden: int = 64):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(2, width, 8, stride=4, padding=2), nn.BatchNorm1d(width), nn.ReLU(),
            nn.Conv1d(width, width, 5, padding=2), nn.BatchNorm1d(width), nn.ReLU(), nn.MaxPool1d(4),
            nn.Conv1d(width, 48, 5, padding=2), nn.BatchNorm1d(48), nn.ReLU(), nn.MaxPool1d(2),
        )
        self.lstm = nn.LSTM(48, hidden, batch_first=True)
        self.out = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = self.features(x).transpose(1, 2)
        _, (h, _) = self.lstm(steps)
        return self.out(h[-1])

    def extra_flops(self, samples: int) -> int:
        """LSTM FLOPs, which FlopCounterMode does not count: 4 gates of (input + hidden) x hidden MACs
        per step, plus the elementwise gate arithmetic."""
        steps = samples // 32
        lstm = self.lstm
        return steps * (2 * 4 * (lstm.input_size + lstm.hidden_size) * lstm.hidden_size + 10 * lstm.hidden_size)


class SmallCNN(nn.Module):
    """Three 1-D convolutions over time (channels: each antenna's I and Q), global average and max
    pooling, linear."""

    def __init__(self, channels: int, classes: int, width: int = 64):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(channels, width, 3, padding=1), nn.BatchNorm1d(width), nn.ReLU(),
            nn.Conv1d(width, width, 3, padding=1), nn.BatchNorm1d(width), nn.ReLU(),
            nn.Conv1d(width, width, 3, padding=1), nn.BatchNorm1d(width), nn.ReLU(),
        )
        self.out = nn.Linear(2 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        return self.out(torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1))

    def extra_flops(self, samples: int) -> int:
        return 0


class SpectrogramCNN(nn.Module):
    """The log power of a SPECTROGRAM_SIZE-point STFT as an image (time x frequency), three 2-D
    convolutions with pooling, global average and max pooling, linear: shift-equivariant in
    frequency and time, which suits tones, hops, sweeps and bursts anywhere in the band."""

    def __init__(self, classes: int, width: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width // 2, 3, padding=1), nn.BatchNorm2d(width // 2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width // 2, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        )
        self.out = nn.Linear(2 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        iq = torch.complex(x[:, 0], x[:, 1]).unflatten(1, (-1, SPECTROGRAM_SIZE))
        image = torch.log10(torch.fft.fft(iq, dim=2).abs().square() + 1e-6).unsqueeze(1)
        h = self.features(image).flatten(2)
        return self.out(torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1))

    def extra_flops(self, samples: int) -> int:
        """The STFT (5 N log2 N per window, uncounted by FlopCounterMode) and the log power."""
        return samples * int(5 * np.log2(SPECTROGRAM_SIZE)) + 4 * samples


def network_for(task: str, antennas: int, classes: int) -> nn.Module:
    if task == "modulation":
        return ConvLSTM(classes)
    if antennas == 1:
        return SpectrogramCNN(classes)
    return SmallCNN(2 * antennas, classes, width=64)


def network_flops(net: nn.Module, antennas: int, samples: int) -> int:
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        net(torch.zeros(1, 2 * antennas, samples))
    return int(counter.get_total_flops()) + net.extra_flops(samples)


def train_network(net: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, seed: int,
                  batch: int = 64, lr: float = 3e-3) -> nn.Module:
    """AdamW with a cosine schedule on shuffled mini-batches."""
    torch.manual_seed(seed)
    inputs, targets = as_channels(x), torch.from_numpy(y)
    optimiser = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-2)
    steps = epochs * -(-len(y) // batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, lr, total_steps=steps)
    net.train()
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for rows in torch.randperm(len(y), generator=generator).split(batch):
            optimiser.zero_grad()
            nn.functional.cross_entropy(net(inputs[rows]), targets[rows]).backward()
            optimiser.step()
            schedule.step()
    return net.eval()


@torch.inference_mode()
def predict(net: nn.Module, x: np.ndarray, chunk: int = 512) -> np.ndarray:
    return np.concatenate([net(as_channels(x[i : i + chunk])).argmax(dim=1).numpy() for i in range(0, len(x), chunk)])
