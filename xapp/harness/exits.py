"""What each exit of a task costs and buys, for the encoder and heads an operator runs: validation
accuracy (from the heads manifest), GFLOPs per frame, and latency per batch measured on this host
(the trunk up to the exit plus the head, one pass timing every block)."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from xapp.config.manifest import task_heads
from xapp.model import Encoder, Head, exit_flops, load_head
from xapp.model.heads import read_head
from xapp.model.side import head_reads


@dataclass(frozen=True)
class ExitRow:
    task: str
    exit: int
    val_accuracy: float | None  # fraction; None when the manifest has no validation score
    gflops: float  # per frame: encoder to this exit plus the head
    latency_ms: float  # per batch on this host, median of the repeats
    chosen: bool  # the descriptor's exit for this task (or one of its dynamic policy's exits)
    side: str | None = None  # side features of the raw frame the head reads beside the exit (xapp.model.side)

    def to_dict(self) -> dict:
        return asdict(self)


def block_times(encoder: Encoder, x: torch.Tensor, repeats: int) -> np.ndarray:
    """Seconds from frames to the output of each block (cumulative), median over `repeats` passes after a warm-up."""
    runs = []
    with torch.inference_mode():
        for _ in range(repeats + 1):
            t0 = time.perf_counter()
            h = encoder.tokens(x)
            marks = []
            for block in encoder.blocks:
                h = block(h)
                marks.append(time.perf_counter() - t0)
            runs.append(marks)
    return np.median(np.array(runs[1:]), axis=0)


def head_seconds(head: Head, h: torch.Tensor, frames: torch.Tensor, repeats: int) -> float:
    """Median seconds of the head on h, its side features of `frames` (if it reads some) included."""
    with torch.inference_mode():
        read_head(head, h, frames)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            read_head(head, h, frames)
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def profile_task(encoder: Encoder, manifest: dict, manifest_path: Path, task: str, chosen: Sequence[int],
                 batch: int, repeats: int, seed: int = 0) -> list[ExitRow]:
    """One row per exit the manifest has for `task`, timed on `batch` random unit-power frames of its shape."""
    antennas, samples = manifest["tasks"][task]["frame_shape"]
    rng = np.random.default_rng(seed)
    frames = (rng.standard_normal((batch, antennas, samples)) + 1j * rng.standard_normal((batch, antennas, samples))) / np.sqrt(2)
    x = torch.from_numpy(frames.astype(np.complex64))
    cumulative = block_times(encoder, x, repeats)
    with torch.inference_mode():
        states = encoder(x, range(1, encoder.cfg.depth + 1))
    tokens = next(iter(states.values())).shape[1]
    encoder_flops = exit_flops(encoder.cfg, tokens)
    rows = []
    for entry in task_heads(manifest, task, manifest_path):
        k = entry["exit"]
        head, _ = load_head(entry["path"], entry.get("sha256"))
        seconds = cumulative[k - 1] + head_seconds(head, states[k], x, repeats)
        rows.append(ExitRow(task, k, entry.get("val_accuracy"), (encoder_flops[k - 1] + head.flops(tokens)) / 1e9,
                            1000 * seconds, k in chosen, head.side))
    return rows


def format_exit_table(rows: Sequence[ExitRow], batch: int, descriptor: str) -> str:
    lines = [f"per exit: validation accuracy (manifest), GFLOPs per frame, latency per batch of {batch} on this host; "
             f"* = the exit in {descriptor}", ""]
    lines.append(f"{'task':<14}{'exit':>5}{'val acc':>9}{'GFLOP/frame':>13}{'ms/batch':>10}  head reads")
    previous = None
    for r in rows:
        if previous is not None and r.task != previous:
            lines.append("")
        previous = r.task
        acc = "-" if r.val_accuracy is None else f"{100 * r.val_accuracy:.1f}%"
        lines.append(f"{r.task:<14}{r.exit:>4}{'*' if r.chosen else ' '}{acc:>9}{r.gflops:>13.3f}{r.latency_ms:>10.1f}"
                     f"  {head_reads(r.side)}")
    return "\n".join(lines)


def plot(rows: Sequence[ExitRow], out: str | Path, batch: int) -> Path:
    """Accuracy against GFLOPs per frame and against latency, one line per task, the chosen exit ringed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_task: Mapping[str, list[ExitRow]] = {}
    for r in rows:
        by_task.setdefault(r.task, []).append(r)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for (name, xlabel), ax in zip((("gflops", "GFLOPs per frame"), ("latency_ms", f"ms per batch of {batch} (this host)")), axes):
        for task, task_rows in by_task.items():
            scored = [r for r in task_rows if r.val_accuracy is not None]
            xs, ys = [getattr(r, name) for r in scored], [100 * r.val_accuracy for r in scored]
            (line,) = ax.plot(xs, ys, marker="o", label=task)
            for r, x, y in zip(scored, xs, ys):
                ax.annotate(str(r.exit), (x, y), textcoords="offset points", xytext=(3, 3), fontsize=7)
                if r.chosen:
                    ax.plot([x], [y], marker="o", markersize=13, markerfacecolor="none", color=line.get_color())
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("validation accuracy (%)")
    axes[0].legend()
    fig.suptitle("What each exit costs and buys (numbers: exit; rings: the descriptor's exits)")
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
