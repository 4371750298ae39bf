"""Dataset types, errors and the option checks every task generator shares."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np


class DataError(ValueError):
    """A bad argument to a generator or the data CLI (unknown task, bad n, bad option...)."""


class DataFormatError(DataError):
    """A dataset file that does not follow the contract; the message names the file and the field."""


@dataclass
class TaskData:
    task: str
    x: np.ndarray  # complex64 [N, antennas, samples], unit average power per frame
    y: np.ndarray  # int64 [N]
    classes: tuple[str, ...]
    snr_db: np.ndarray  # float32 [N]
    meta: dict[str, np.ndarray] = field(default_factory=dict)  # per-frame arrays, each of length N

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class TaskSpec:
    name: str
    classes: tuple[str, ...]
    frame_shape: tuple[int, int]  # default (antennas, samples)
    generate: Callable[..., TaskData]  # generate(n, seed, **options) -> TaskData
    options: tuple[str, ...] = ()  # keyword options the generator accepts


def _check_int(name: str, value: Any, minimum: int, kind: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DataError(f"{name} must be a {kind} integer, got {value!r}")
    return int(value)


def check_count(n: Any) -> int:
    return _check_int("n", n, 1, "positive")


def check_seed(seed: Any) -> int:
    return _check_int("seed", seed, 0, "non-negative")


def check_samples(task: str, samples: Any, minimum: int, maximum: int = 1 << 16) -> int:
    # Frames are cut into 16-sample patches by the encoder, so lengths are multiples of 16.
    if (
        isinstance(samples, bool)
        or not isinstance(samples, (int, np.integer))
        or not minimum <= samples <= maximum
        or samples % 16
    ):
        raise DataError(
            f"{task}: samples must be a multiple of 16 in [{minimum}, {maximum}], got {samples!r}"
        )
    return int(samples)


def snr_range(task: str, name: str, value: Any, default: tuple[float, float]) -> tuple[float, float]:
    """Accept None (task default), one number, or a (low, high) pair; all in dB."""
    if value is None:
        return default
    pair = (value, value) if np.isscalar(value) else tuple(value)
    try:
        low, high = (float(v) for v in pair)
    except (TypeError, ValueError):
        raise DataError(f"{task}: {name} must be a number or a (low, high) pair, got {value!r}") from None
    if not (-60.0 <= low <= high <= 100.0):
        raise DataError(f"{task}: {name} must satisfy -60 <= low <= high <= 100 dB, got {value!r}")
    return low, high


def pick_labels(task: str, classes: tuple[str, ...], n: int, subset: Any, rng: np.random.Generator) -> np.ndarray:
    """Balanced labels in random order, optionally restricted to a subset of class names."""
    if subset is None:
        allowed = np.arange(len(classes))
    else:
        names = [subset] if isinstance(subset, str) else list(subset)
        unknown = [c for c in names if c not in classes]
        if unknown or not names:
            raise DataError(f"{task}: unknown classes {unknown or names!r}; choose from {', '.join(classes)}")
        allowed = np.array(sorted({classes.index(c) for c in names}))
    y = allowed[np.arange(n) % len(allowed)]
    return rng.permutation(y).astype(np.int64)


def reject_unknown(task: str, options: Mapping[str, Any], accepted: tuple[str, ...]) -> None:
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise DataError(f"{task}: unknown option(s) {', '.join(unknown)}; accepted: {', '.join(accepted)}")
