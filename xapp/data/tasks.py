"""The task registry, the chunked generate() driver and the pre-training mixture."""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np

from . import dsp, fingerprint, interference, modulation, spatial
from .base import (
    DataError,
    TaskData,
    TaskSpec,
    check_count,
    check_samples,
    check_seed,
    pick_labels,
    reject_unknown,
    snr_range,
)

# Frames are made in chunks: every array stays a few MB (cache-friendly, reused by the allocator
# instead of fresh page-faulted mappings), which is 2x faster than one big batch here.
CHUNK = 512
WORKERS = min(16, os.cpu_count() or 1)  # threads for datasets of several chunks
COMMON_OPTIONS = ("samples", "snr_db", "impairments", "clean", "classes")
PRETRAIN_TASKS = ("modulation", "interference", "beam")  # `los` and `fingerprint` stay unseen


@dataclass(frozen=True)
class Recipe:
    frames: Callable[..., tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]]
    classes: tuple[str, ...]
    frame_shape: tuple[int, int]
    snr_db: tuple[float, float]
    min_samples: int
    max_samples: int
    extra: dict[str, Callable[[str, Any], Any]] = field(default_factory=dict)  # option -> parser
    labels_from_channel: bool = False  # beam: the label is computed, not drawn


def _flag(task: str, name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise DataError(f"{task}: {name} must be true or false, got {value!r}")
    return bool(value)


RECIPES: dict[str, Recipe] = {
    "modulation": Recipe(modulation.frames, modulation.CLASSES, (1, 1024), modulation.SNR_DB, 128, 1 << 16),
    "interference": Recipe(
        interference.frames, interference.CLASSES, (1, 1024), interference.SNR_DB, 128, 1 << 16,
        extra={"inr_db": lambda task, v: snr_range(task, "inr_db", v, interference.INR_DB)},
    ),
    "beam": Recipe(
        spatial.beam_frames, spatial.BEAMS, (spatial.ANTENNAS, 64), spatial.SNR_DB, 16, 4096,
        labels_from_channel=True,
    ),
    "los": Recipe(spatial.los_frames, spatial.LOS_CLASSES, (spatial.ANTENNAS, 64), spatial.SNR_DB, 16, 4096),
    "fingerprint": Recipe(
        fingerprint.frames, fingerprint.CLASSES, (1, 1024), fingerprint.SNR_DB, 128, 1 << 16,
        extra={"hardware": lambda task, v: _flag(task, "hardware", v)},
    ),
}


@dataclass(frozen=True)
class _Draw:
    """What a task's n frames are made from: the labels and SNRs, drawn up front for all of them, and
    a random stream per chunk of CHUNK frames (see `_rows`)."""

    task: str
    recipe: Recipe
    seed: int
    y: np.ndarray
    snr: np.ndarray
    length: int
    impairments: bool
    clean: bool
    extra: dict[str, Any]


def _draw(task: str, n: int, seed: int, options: dict[str, Any]) -> _Draw:
    if task not in RECIPES:
        raise DataError(f"unknown task {task!r}; choose from {', '.join(RECIPES)}")
    recipe = RECIPES[task]
    reject_unknown(task, options, COMMON_OPTIONS + tuple(recipe.extra))
    n, seed = check_count(n), check_seed(seed)
    length = check_samples(task, options.get("samples", recipe.frame_shape[1]), recipe.min_samples, recipe.max_samples)
    low, high = snr_range(task, "snr_db", options.get("snr_db"), recipe.snr_db)
    impairments = _flag(task, "impairments", options.get("impairments", True))
    clean = _flag(task, "clean", options.get("clean", False))
    extra = {k: parse(task, options[k]) for k, parse in recipe.extra.items() if k in options}
    if recipe.labels_from_channel and options.get("classes") is not None:
        raise DataError(f"{task}: the label is computed from the channel, so `classes` cannot be chosen")
    rng = dsp.rng_for(task, seed)
    y = pick_labels(task, recipe.classes, n, options.get("classes"), rng)
    snr = rng.uniform(low, high, n).astype(np.float32)
    return _Draw(task, recipe, seed, y, snr, length, impairments, clean, extra)


def _rows(draw: _Draw, start: int, stop: int) -> TaskData:
    """Frames start..stop-1 of the draw (start a multiple of CHUNK)."""
    recipe = draw.recipe
    x = np.empty((stop - start, recipe.frame_shape[0], draw.length), np.complex64)
    y, snr = draw.y[start:stop].copy(), draw.snr[start:stop]

    def make_chunk(index: int) -> dict[str, np.ndarray]:
        rows = slice(index * CHUNK - start, min((index + 1) * CHUNK, stop) - start)
        x[rows], y[rows], meta = recipe.frames(
            dsp.rng_for(draw.task, draw.seed, index + 1), y[rows], snr[rows], draw.length, draw.impairments,
            draw.clean, **draw.extra
        )
        return meta

    # Every chunk has its own random stream and rows, so chunks can be made in any order: the same bytes
    # on one thread or several (numpy releases the GIL in the array work), and in one piece or in parts.
    chunks = range(start // CHUNK, -(-stop // CHUNK))
    if len(chunks) > 1 and WORKERS > 1:
        with ThreadPoolExecutor(WORKERS) as pool:
            parts = list(pool.map(make_chunk, chunks))
    else:
        parts = [make_chunk(i) for i in chunks]
    meta = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    return TaskData(draw.task, x, y, recipe.classes, snr, meta)


def generate_task(task: str, n: int, seed: int, **options: Any) -> TaskData:
    return _rows(_draw(task, n, seed, options), 0, n)


def generate_parts(task: str, n: int, seed: int, part: int, **options: Any) -> Iterator[TaskData]:
    """`generate(task, n, seed, **options)` in consecutive parts of `part` frames (a multiple of
    CHUNK; the last may be shorter), the same bytes, with only one part in memory at a time."""
    if part < CHUNK or part % CHUNK:
        raise DataError(f"{task}: parts must be a positive multiple of {CHUNK} frames, got {part}")
    draw = _draw(task, n, seed, options)
    for start in range(0, len(draw.y), part):
        yield _rows(draw, start, min(start + part, len(draw.y)))


TASKS: dict[str, TaskSpec] = {
    name: TaskSpec(
        name, r.classes, r.frame_shape, functools.partial(generate_task, name), COMMON_OPTIONS + tuple(r.extra)
    )
    for name, r in RECIPES.items()
}


def generate(task: str, n: int, seed: int, **options: Any) -> TaskData:
    """Labelled frames of `task`; the same (task, n, seed, options) give the same bytes."""
    return generate_task(task, n, seed, **options)


def pretrain_mixture(n: int, seed: int) -> dict[tuple[int, int], np.ndarray]:
    """n unlabelled frames from the in-distribution families, an equal share each in expectation,
    grouped by frame shape: {(1, 1024): [n1, 1, 1024], (16, 64): [n2, 16, 64]} (empty groups left out)."""
    n, seed = check_count(n), check_seed(seed)
    rng = dsp.rng_for("pretrain", seed)
    counts = rng.multinomial(n, [1 / len(PRETRAIN_TASKS)] * len(PRETRAIN_TASKS))
    groups: dict[tuple[int, int], list[np.ndarray]] = {}
    for task, count in zip(PRETRAIN_TASKS, counts):
        if count:
            x = generate(task, int(count), int(rng.integers(1 << 62))).x
            groups.setdefault(x.shape[1:], []).append(x)
    return {shape: rng.permutation(np.concatenate(xs)) for shape, xs in groups.items()}
