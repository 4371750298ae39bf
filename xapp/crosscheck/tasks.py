"""Frame builders per task and the seeded, per-frame generate() driver of the cross-check source."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from xapp.data import DataError, TaskData
from xapp.data import TASKS as CONTRACT

from . import analog, array, interferers, linear
from .channel import LEAD, add_noise, receiver, unit_power
from .fsk import CPFSK_INDEX, GFSK_BT, GFSK_INDEX, fsk

MODULATION_CFO = 0.05  # cycles/sample: an untuned receiver
INTERFERENCE_CFO = 0.01
INR_DB = (0.0, 25.0)
DESIRED = ("BPSK", "QPSK", "8PSK", "QAM16", "QAM64", "GFSK")
FrameMaker = Callable[[np.random.Generator, int, float, int], tuple[np.ndarray, int]]


def log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def transmitted(rng: np.random.Generator, name: str, length: int) -> np.ndarray:
    """`length` samples of one modulation class at a rate, pulse and index drawn for this frame."""
    if name in ("BPSK", "QPSK", "8PSK", "PAM4", "QAM16", "QAM64"):
        rate = log_uniform(rng, *linear.SAMPLES_PER_SYMBOL)
        return linear.waveform(rng, linear.constellation(name), length, rate, linear.draw_pulse(rng))
    if name == "CPFSK":
        return fsk(rng, length, log_uniform(rng, 3, 14), rng.uniform(*CPFSK_INDEX), None)
    if name == "GFSK":
        return fsk(rng, length, log_uniform(rng, 3, 14), rng.uniform(*GFSK_INDEX), rng.uniform(*GFSK_BT))
    return {"AM-DSB": analog.am_dsb, "AM-SSB": analog.am_ssb, "WBFM": analog.wbfm}[name](rng, length)


def modulation_frame(rng: np.random.Generator, label: int, snr_db: float, length: int) -> tuple[np.ndarray, int]:
    name = CONTRACT["modulation"].classes[label]
    received = receiver(rng, transmitted(rng, name, length + LEAD), length, MODULATION_CFO)
    return add_noise(rng, received, snr_db)[None], label


def interference_frame(rng: np.random.Generator, label: int, snr_db: float, length: int) -> tuple[np.ndarray, int]:
    """A desired signal at snr_db over the band, plus the labelled interferer at INR_DB above the noise."""
    desired = transmitted(rng, DESIRED[rng.integers(len(DESIRED))], length + LEAD)
    received = receiver(rng, desired, length, INTERFERENCE_CFO)
    noise_power = np.mean(np.abs(received) ** 2) / 10 ** (snr_db / 10)
    kind = CONTRACT["interference"].classes[label]
    if kind != "none":
        signal, on = interferers.KINDS[kind](rng, length)
        power = np.mean(np.abs(signal[on]) ** 2)
        inr = 10 ** (rng.uniform(*INR_DB) / 10)
        received = received + on * signal * np.sqrt(inr * noise_power / power) * np.exp(1j * rng.uniform(0, 2 * np.pi))
    noise = np.sqrt(noise_power / 2) * (rng.standard_normal(length) + 1j * rng.standard_normal(length))
    return (received + noise)[None], label


def beam_frame(rng: np.random.Generator, label: int, snr_db: float, length: int) -> tuple[np.ndarray, int]:
    clean, _ = array.noiseless_frame(rng, length)
    return add_noise(rng, clean, snr_db), array.best_beam(clean)


@dataclass(frozen=True)
class Source:
    make: FrameMaker
    snr_db: tuple[float, float]
    labels_from_channel: bool = False


SOURCES: dict[str, Source] = {
    "modulation": Source(modulation_frame, (-20.0, 18.0)),
    "interference": Source(interference_frame, (0.0, 25.0)),
    "beam": Source(beam_frame, (-10.0, 20.0), labels_from_channel=True),
}


def _snr(task: str, value: Any, default: tuple[float, float]) -> tuple[float, float]:
    if value is None:
        return default
    pair = (value, value) if np.isscalar(value) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, float, np.number)) for v in pair) or pair[0] > pair[1]:
        raise DataError(f"crosscheck {task}: snr_db must be a number or a (low, high) pair, got {value!r}")
    return float(pair[0]), float(pair[1])


def generate(task: str, n: int, seed: int, snr_db: Any = None, samples: int | None = None) -> TaskData:
    """`n` labelled frames of `task` from the cross-check source; same arguments, same bytes."""
    if task not in SOURCES:
        raise DataError(f"crosscheck: unknown task {task!r}; the cross-check makes {', '.join(SOURCES)}")
    for name, value, low in (("n", n, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise DataError(f"crosscheck {task}: {name} must be an integer >= {low}, got {value!r}")
    source, spec = SOURCES[task], CONTRACT[task]
    length = spec.frame_shape[1] if samples is None else samples
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 16 or length % 16:
        raise DataError(f"crosscheck {task}: samples must be a positive multiple of 16, got {samples!r}")
    low, high = _snr(task, snr_db, source.snr_db)
    root = np.random.SeedSequence([seed, zlib.crc32(f"crosscheck/{task}".encode())])
    rng = np.random.default_rng(root)
    y = rng.permutation(np.arange(n) % len(spec.classes)).astype(np.int64)
    snr = rng.uniform(low, high, n).astype(np.float32)
    x = np.empty((n, spec.frame_shape[0], length), np.complex64)
    for i, frame_seed in enumerate(root.spawn(n)):
        frame, y[i] = source.make(np.random.default_rng(frame_seed), int(y[i]), float(snr[i]), length)
        x[i] = unit_power(frame)
    return TaskData(task, x, y, spec.classes, snr, {"source": np.full(n, "crosscheck")})
