"""`xapp eval`: the shipped heads of one task, at every exit, on an operator's own recording."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from xapp.data import TaskData
from xapp.model import Encoder, Head, exit_flops
from xapp.model.patch import capture_windows
from xapp.train.calibration import confidence_scores, exit_predictions


class EvalError(Exception):
    """The operator's data cannot be scored by the task's heads (format, shape or class names)."""


def load_recording(path: str | Path, task: str, samples: int) -> TaskData:
    """A labelled dataset in the contract's formats: .npz, or a SigMF recording (.sigmf-meta) cut into
    frames of `samples` samples per channel."""
    from xapp.data import DataError
    from xapp.data.io import load_npz, load_sigmf

    path = Path(path)
    if not path.is_file():
        raise EvalError(f"{path}: no such file")
    try:
        if path.name.endswith(".npz"):
            return load_npz(path)
        if path.name.endswith(".sigmf-meta"):
            return load_sigmf(path, samples=samples, task=task)
    except DataError as exc:
        raise EvalError(str(exc)) from exc
    raise EvalError(f"{path}: unsupported file type; give a .npz dataset or a .sigmf-meta recording")


def spelling(name: str) -> str:
    """A class name as other tools spell it too: case, spaces, '-' and '_' ignored, and a leading order
    moved behind the scheme ("16qam", "QAM-16" and "QAM16" are one name, as are "8psk" and "PSK8")."""
    plain = re.sub(r"[\s_\-]", "", name).lower()
    order_first = re.fullmatch(r"(\d+)([a-z]+)", plain)
    return f"{order_first[2]}{order_first[1]}" if order_first else plain


def labels_for(data: TaskData, task: str, classes: Sequence[str], source: str | Path) -> np.ndarray:
    """The recording's labels as indices into the heads' class list (the file may order or subset them,
    and spell them as other tools do: `spelling`); unlabelled frames (-1) stay -1."""
    by_spelling = {spelling(c): c for c in classes}
    named = [c if c in classes else by_spelling.get(spelling(c)) for c in data.classes]
    unknown = [c for c, ours in zip(data.classes, named) if ours is None]
    if unknown:
        raise EvalError(f"{source}: class names {unknown} are not classes of task {task!r} "
                        f"(expected names among: {', '.join(classes)})")
    if len(set(named)) < len(named):
        raise EvalError(f"{source}: class names {list(data.classes)} name one class of task {task!r} twice")
    y = np.asarray(data.y)
    if len(y) and (y.min() < -1 or y.max() >= len(data.classes)):
        raise EvalError(f"{source}: labels must index its {len(data.classes)} classes, found {y.min()}..{y.max()}")
    if not (y >= 0).any():
        raise EvalError(f"{source}: no labelled frames to score")
    mapping = np.array([list(classes).index(c) for c in named] + [-1], dtype=np.int64)
    return mapping[y]  # y = -1 picks the trailing -1


def check_frames(data: TaskData, frame_shape: Sequence[int], task: str, source: str | Path) -> int:
    """How many of the heads' frames each of the recording's frames holds along time: 1 for frames of
    the heads' shape, m for captures m times as long (decided over m windows, `evaluate_exits`)."""
    x = data.x
    if x.ndim != 3 or not np.iscomplexobj(x):
        raise EvalError(f"{source}: frames must be complex [N, antennas, samples], got {x.dtype} {list(x.shape)}")
    antennas, samples = (int(s) for s in frame_shape)
    if x.shape[1] != antennas or x.shape[2] % samples:
        raise EvalError(f"{source}: frames are {list(x.shape[1:])} (antennas, samples); the {task} heads read "
                        f"{[antennas, samples]}, or captures a whole number of times as long "
                        f"({[antennas, 2 * samples]}, {[antennas, 3 * samples]}, ...)")
    return x.shape[2] // samples


def evaluate_exits(encoder: Encoder, heads: dict[int, Head], x: np.ndarray, y: np.ndarray,
                   chunk: int = 128, windows: int = 1) -> list[dict]:
    """Per head: accuracy and GFLOPs/frame, how far its confidence is from its accuracy, and what acting
    only on decisions at least 0.5-0.95 sure gets; all exits computed in one encoder pass per chunk.
    With `windows` > 1 each frame of x is a capture of that many of the heads' frames, decided once
    over all of them (`exit_predictions`), at that many times the cost."""
    frames = capture_windows(x, windows) if windows > 1 else x
    predicted = exit_predictions(encoder, heads, frames, chunk, windows)
    tokens = encoder.cfg.tokens(*frames.shape[1:])
    enc = exit_flops(encoder.cfg, tokens)
    rows = []
    for k, p in predicted.items():
        correct = p.label == y
        gflops = windows * (enc[k - 1] + heads[k].flops(tokens)) / 1e9
        rows.append({"exit": k, "gflops": gflops, "percent_of_full": 100 * gflops / (windows * enc[-1] / 1e9),
                     "accuracy": float(correct.mean()), "n": len(x), "windows": windows,
                     **confidence_scores(correct, p.confidence)})
    return rows


def format_eval_table(task: str, source: str | Path, rows: list[dict]) -> str:
    def sure(r: dict, level: float) -> str:
        (b,) = (b for b in r["by_confidence"] if b["min_confidence"] == level)
        return f"{100 * b['coverage']:5.1f}% @ " + ("  n/a " if b["accuracy"] is None else f"{100 * b['accuracy']:5.1f}%")

    windows = rows[0]["windows"]
    each = f", each decided over {windows} windows of the heads' frame length" if windows > 1 else ""
    lines = [f"{task} heads on {source} ({rows[0]['n']} frames{each}); ECE: calibration error, points; "
             "conf >= c: share of frames at least c sure @ their accuracy",
             f"{'exit':>4}  {'GFLOPs/frame':>12}  {'% of full':>9}  {'accuracy':>8}  {'ECE':>5}  "
             f"{'conf >= 0.8':>16}  {'conf >= 0.9':>16}"]
    lines += [f"{r['exit']:>4}  {r['gflops']:>12.4f}  {r['percent_of_full']:>8.1f}%  {100 * r['accuracy']:>7.2f}%  "
              f"{100 * r['calibration_error']:>5.1f}  {sure(r, 0.8):>16}  {sure(r, 0.9):>16}" for r in rows]
    return "\n".join(lines)
