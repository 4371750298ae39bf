"""Datasets on disk: `.npz` in the contract format, and SigMF recordings cut into frames.

npz fields: x complex64 [N, antennas, samples], y int64 [N], classes str [C], snr_db float32 [N],
task str (0-d), and per-frame metadata as `meta.<key>` arrays of length N. Stored without pickles.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from . import dsp
from .base import DataFormatError, TaskData

META_PREFIX = "meta."
UNLABELLED = -1  # y of SigMF frames no labelled annotation covers


def save_npz(path: str | os.PathLike, data: TaskData) -> None:
    arrays = {
        "x": np.asarray(data.x, np.complex64),
        "y": np.asarray(data.y, np.int64),
        "classes": np.array(data.classes, dtype=np.str_),
        "snr_db": np.asarray(data.snr_db, np.float32),
        "task": np.array(data.task, dtype=np.str_),
    }
    arrays |= {META_PREFIX + k: np.asarray(v) for k, v in data.meta.items()}
    with open(path, "wb") as f:  # an open file keeps numpy from appending ".npz" to the name
        np.savez(f, **arrays)


def load_npz(path: str | os.PathLike) -> TaskData:
    where = str(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataFormatError(f"{where}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataFormatError(f"{where}: not a readable .npz archive ({exc})") from None
    with archive:
        try:
            fields = {name: archive[name] for name in archive.files}
        except ValueError as exc:  # an object array would need pickle
            raise DataFormatError(f"{where}: holds a field that needs pickle, which is refused ({exc})") from None
    for name in ("x", "y", "classes"):
        if name not in fields:
            raise DataFormatError(f"{where}: missing field '{name}' (has {', '.join(sorted(fields)) or 'nothing'})")
    x, y, classes = fields["x"], fields["y"], fields["classes"]
    if not np.iscomplexobj(x) or x.ndim != 3:
        raise DataFormatError(f"{where}: field 'x' must be complex [N, antennas, samples], got {x.dtype} {x.shape}")
    n = len(x)
    if not np.issubdtype(y.dtype, np.integer) or y.shape != (n,):
        raise DataFormatError(f"{where}: field 'y' must be integer [{n}], got {y.dtype} {y.shape}")
    if classes.dtype.kind != "U" or classes.ndim != 1:
        raise DataFormatError(f"{where}: field 'classes' must be a 1-D string array, got {classes.dtype} {classes.shape}")
    bad = (y < UNLABELLED) | (y >= len(classes))
    if bad.any():
        raise DataFormatError(
            f"{where}: field 'y' has {int(bad.sum())} labels outside [-1, {len(classes) - 1}] (first at index {int(np.argmax(bad))})"
        )
    snr = fields.get("snr_db", np.full(n, np.nan, np.float32))
    if snr.shape != (n,):
        raise DataFormatError(f"{where}: field 'snr_db' must have shape [{n}], got {snr.shape}")
    meta = {}
    for name, value in fields.items():
        if name.startswith(META_PREFIX):
            if value.ndim == 0 or len(value) != n:
                raise DataFormatError(f"{where}: field '{name}' must have {n} rows, got shape {value.shape}")
            meta[name[len(META_PREFIX) :]] = value
    task = str(fields["task"]) if "task" in fields else Path(where).stem
    return TaskData(task, x.astype(np.complex64), y.astype(np.int64), tuple(str(c) for c in classes), snr.astype(np.float32), meta)


def load_sigmf(
    meta_path: str | os.PathLike,
    samples: int = 1024,
    task: str = "sigmf",
    classes: Sequence[str] | None = None,
    max_frames: int | None = None,
) -> TaskData:
    """Cut a SigMF recording (.sigmf-meta next to its .sigmf-data) into unit-power frames
    [N, channels, samples]. A frame's label is the `core:label` of an annotation covering it entirely;
    frames no labelled annotation covers get y = -1. classes defaults to the sorted labels found."""
    from sigmf import error as sigmf_error
    from sigmf import sigmffile

    where = str(meta_path)
    if samples < 1:
        raise DataFormatError(f"{where}: samples per frame must be positive, got {samples}")
    if not os.path.isfile(where):
        raise DataFormatError(f"{where}: cannot open SigMF recording (no such file)")
    try:
        recording = sigmffile.fromfile(where)
        iq = np.asarray(recording.read_samples())
    except (sigmf_error.SigMFError, OSError, ValueError, KeyError) as exc:
        raise DataFormatError(f"{where}: not a valid SigMF recording ({type(exc).__name__}: {exc})") from None
    if iq.ndim == 1:
        iq = iq[:, None]
    if not np.iscomplexobj(iq):
        raise DataFormatError(f"{where}: field 'core:datatype' must be complex (c...), got real samples")
    count = len(iq) // samples
    if max_frames is not None:
        count = min(count, max_frames)
    if count == 0:
        raise DataFormatError(f"{where}: {len(iq)} samples is less than one frame of {samples}")
    x = iq[: count * samples].reshape(count, samples, -1).transpose(0, 2, 1).astype(np.complex64)
    starts = np.arange(count, dtype=np.int64) * samples

    spans = []
    for index, note in enumerate(recording.get_annotations()):
        label = note.get("core:label")
        if label is None:
            continue
        if not isinstance(label, str):
            raise DataFormatError(f"{where}: annotations[{index}].core:label must be a string, got {label!r}")
        start = note.get("core:sample_start")
        length = note.get("core:sample_count", len(iq) - (start or 0))
        if not isinstance(start, int) or not isinstance(length, int) or start < 0 or length < 0:
            raise DataFormatError(f"{where}: annotations[{index}] needs integer core:sample_start/core:sample_count")
        spans.append((start, start + length, label, index))
    names = tuple(classes) if classes is not None else tuple(sorted({label for _, _, label, _ in spans}))
    y = np.full(count, UNLABELLED, np.int64)
    for begin, end, label, index in spans:
        if label not in names:
            raise DataFormatError(
                f"{where}: annotations[{index}].core:label {label!r} is not one of the classes {', '.join(names)}"
            )
        covered = (starts >= begin) & (starts + samples <= end) & (y == UNLABELLED)
        y[covered] = names.index(label)
    return TaskData(
        task,
        dsp.unit_power(x),
        y,
        names,
        np.full(count, np.nan, np.float32),
        {"sample_start": starts},
    )
