"""`xapp eval`: the shipped heads of one task, at every exit, on an operator's own recording."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from xapp.data import TaskData
from xapp.model import Encoder, Head, exit_flops
from xapp.model.heads import read_head


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


def labels_for(data: TaskData, task: str, classes: Sequence[str], source: str | Path) -> np.ndarray:
    """The recording's labels as indices into the heads' class list (the file may order or subset them);
    unlabelled frames (-1) stay -1."""
    unknown = [c for c in data.classes if c not in classes]
    if unknown:
        raise EvalError(f"{source}: class names {unknown} are not classes of task {task!r} "
                        f"(expected names among: {', '.join(classes)})")
    y = np.asarray(data.y)
    if len(y) and (y.min() < -1 or y.max() >= len(data.classes)):
        raise EvalError(f"{source}: labels must index its {len(data.classes)} classes, found {y.min()}..{y.max()}")
    if not (y >= 0).any():
        raise EvalError(f"{source}: no labelled frames to score")
    mapping = np.array([list(classes).index(c) for c in data.classes] + [-1], dtype=np.int64)
    return mapping[y]  # y = -1 picks the trailing -1


def check_frames(data: TaskData, frame_shape: Sequence[int], task: str, source: str | Path) -> None:
    x = data.x
    if x.ndim != 3 or not np.iscomplexobj(x):
        raise EvalError(f"{source}: frames must be complex [N, antennas, samples], got {x.dtype} {list(x.shape)}")
    if tuple(x.shape[1:]) != tuple(frame_shape):
        raise EvalError(f"{source}: frames are {list(x.shape[1:])} (antennas, samples); the {task} heads were "
                        f"trained on {list(frame_shape)}")


@torch.inference_mode()
def evaluate_exits(encoder: Encoder, heads: dict[int, Head], x: np.ndarray, y: np.ndarray,
                   chunk: int = 128) -> list[dict]:
    """Accuracy and GFLOPs/frame of each head, all exits computed in one encoder pass per chunk."""
    exits = sorted(heads)
    correct = dict.fromkeys(exits, 0)
    for start in range(0, len(x), chunk):
        batch = torch.from_numpy(np.ascontiguousarray(x[start:start + chunk]))
        for k, h in encoder(batch, exits).items():
            correct[k] += int((read_head(heads[k], h, batch).argmax(-1).numpy() == y[start:start + chunk]).sum())
    tokens = encoder.cfg.tokens(*x.shape[1:])
    enc = exit_flops(encoder.cfg, tokens)
    rows = []
    for k in exits:
        h = heads[k]
        gflops = (enc[k - 1] + h.flops(tokens)) / 1e9
        rows.append({"exit": k, "gflops": gflops, "percent_of_full": 100 * gflops / (enc[-1] / 1e9),
                     "accuracy": correct[k] / len(x), "n": len(x)})
    return rows


def format_eval_table(task: str, source: str | Path, rows: list[dict]) -> str:
    lines = [f"{task} heads on {source} ({rows[0]['n']} frames)",
             f"{'exit':>4}  {'GFLOPs/frame':>12}  {'% of full':>9}  {'accuracy':>8}"]
    lines += [f"{r['exit']:>4}  {r['gflops']:>12.4f}  {r['percent_of_full']:>8.1f}%  {100 * r['accuracy']:>7.2f}%"
              for r in rows]
    return "\n".join(lines)
