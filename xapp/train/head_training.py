"""`xapp heads train`: with the encoder frozen, a head at every exit for every task.

Per task: fixed train/val/test splits drawn by seed, features at every exit cached in one encoder
pass per split, then each exit's head trained with AdamW on the cache; the epoch with the best
validation accuracy is kept. For mean-pooling heads the cache holds one normalised mean vector per
frame and exit (exact: see Head.forward_pooled), for attention and energy pooling the fp16 token
states. With several poolings asked for (`pooling: mean,energy`), each is trained at every exit from
one cache and the one with the best validation accuracy is kept; the manifest records them all. With
side features (`side: auto`, or a kind of xapp.model.side), each exit also gets heads that read them
beside the exit, and again the best by validation is kept. Writes
heads/<task>/exit<k>.safetensors and heads/manifest.yaml (per file: task, exit, classes,
accuracies, FLOPs, sha256). A head must cost under HEAD_SHARE_LIMIT of the trunk's FLOPs at its exit: a
candidate (pooling and side features) that would cost more there is not trained.
"""

from __future__ import annotations

import math
import shutil
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.nn import functional as F
from tqdm import tqdm

from xapp.config.manifest import ManifestError, read_manifest, task_heads
from xapp.data import TASKS, TaskData, generate, generate_parts
from xapp.data.tasks import CHUNK as GENERATOR_CHUNK
from xapp.model import Encoder, Head, exit_flops, save_head
from xapp.model.heads import POOLINGS, load_head, normalised_mean
from xapp.model.patch import capture_windows
from xapp.model.side import SIDE_KINDS, side_features
from xapp.train.calibration import calibrate, calibrate_windows, exit_logits
from xapp.train.features import exit_states
from xapp.train.memory import release_freed_memory

SPLITS = ("train", "val", "test")
MANIFEST = "manifest.yaml"
VALIDATION = "validation split"  # what a head's temperature was fitted on, unless an operator's recording
SNR_BIN_DB = 2.0
HEAD_SHARE_LIMIT = 0.02  # a head costs under 2 % of the trunk's FLOPs at its exit
STREAM_PART = 64 * GENERATOR_CHUNK  # frames generated at a time while a split is cached
# `side: auto`: the side features a task's heads may read, each tried beside the trunk-only head, which is
# always trained too (its accuracy stays in the manifest's `by_pooling`: for an unseen task, how the trunk
# transfers). `fingerprint` tries what the transmitter's hardware leaves on the frame (`impairments`),
# which the trunk, pre-trained without fingerprint, barely sees: 88 % for those 33 statistics and an MLP
# against 67.5 % for the trunk alone (docs/research.md, "Session 27"). `los` tries how the energy spreads
# over directions (`spatial`): 80 % for those 47 statistics and an MLP against 71 % for the trunk alone.
# The 27 hand features (`hand`) buy modulation and interference 0.2-0.8 points more than the four spectral lines at the default exits, for ~6x their CPU time (0.4 against
# 0.07 ms per frame, over half a block's): too dear for the default (docs/research.md, "Session 12").
# Modulation also tries the blind symbol statistics (`symbols`: the lines beside them), which tell QAM16
# from QAM64 where the trunk cannot; they cost over 2 % of the trunk before exit 3, so are tried from there.
# Interference also tries the frame with its strongest signal taken out (`cancel`: the lines beside the
# residual's statistics), where an interferer under a strong desired signal shows; over 2 % before exit 4.
AUTO_SIDE = {"modulation": ("lines", "symbols"), "interference": ("lines", "cancel"), "beam": ("beams",),
             "fingerprint": ("impairments",), "los": ("spatial",)}


class HeadCostError(ValueError):
    """A head would cost more than HEAD_SHARE_LIMIT of the trunk's FLOPs at its exit."""


@dataclass(frozen=True)
class TrainSettings:
    train: int = 4000
    val: int = 1000
    test: int = 2000
    epochs: int = 30
    batch: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    pooling: str = "mean"  # mean | attn | energy, or several comma-separated (the best by validation kept per exit)
    hidden: int = 128
    queries: int = 1  # learned queries of attention pooling
    projections: int = 24  # learned projections of energy pooling
    side: str = "none"  # none | auto (AUTO_SIDE) | kinds of xapp.model.side, comma-separated: heads reading each are tried too
    seed: int = 0
    chunk: int = 128  # frames per encoder pass while caching
    exits: tuple[int, ...] = ()  # the exits to train heads at; empty: every exit of the encoder

    def exits_of(self, depth: int) -> list[int]:
        """The exits heads are trained at, for an encoder of `depth` blocks."""
        if not self.exits:
            return list(range(1, depth + 1))
        outside = [k for k in self.exits if not 1 <= k <= depth]
        if outside:
            raise ValueError(f"exits {outside} outside the encoder's 1..{depth}")
        return sorted(set(self.exits))

    def split_size(self, split: str) -> int:
        return {"train": self.train, "val": self.val, "test": self.test}[split]

    def poolings(self) -> tuple[str, ...]:
        chosen = tuple(p.strip() for p in self.pooling.split(","))
        if not chosen or any(p not in POOLINGS for p in chosen):
            raise ValueError(f"pooling must be one or more of {POOLINGS}, comma-separated; got {self.pooling!r}")
        if "energy" in chosen and self.projections < 1:
            raise ValueError(f"energy pooling needs at least 1 projection, got {self.projections}")
        return chosen

    def sides(self, task: str) -> tuple[str | None, ...]:
        """The side inputs to try for `task`'s heads: always none, then each kind asked for."""
        if self.side in ("none", "auto"):
            return (None, *(AUTO_SIDE.get(task, ()) if self.side == "auto" else ()))
        kinds = tuple(k.strip() for k in self.side.split(","))
        if any(k not in SIDE_KINDS for k in kinds):
            raise ValueError(f"side must be none, auto or one or more of {SIDE_KINDS}, comma-separated; got {self.side!r}")
        return (None, *kinds)


def split_seed(seed: int, split: str) -> int:
    """Data seed of a split; far from the seeds pre-training and the probe draw from."""
    return 7000 + 10 * seed + SPLITS.index(split)


def task_split(task: str, split: str, settings: TrainSettings) -> TaskData:
    return generate(task, settings.split_size(split), split_seed(settings.seed, split))


def cache_features(encoder: Encoder, x: np.ndarray, exits: Sequence[int], chunk: int, pooling: str,
                   desc: str = "", progress: bool = True) -> dict[int, torch.Tensor]:
    """What a head of this pooling reads, at every exit, in one encoder pass: normalised means
    [N, D] (float32) for mean pooling, token states [N, T, D] (fp16) for the others; on the
    encoder's device, where the heads are then trained."""
    cache: dict[int, torch.Tensor] = {}
    for start in tqdm(range(0, len(x), chunk), desc=desc, unit="chunk", disable=not progress, leave=False):
        for k, h in exit_states(encoder, x[start:start + chunk], exits, chunk, dtype=torch.float32,
                                keep_on_device=True).items():
            part = normalised_mean(h) if pooling == "mean" else h.half()
            if k not in cache:  # one tensor per exit, filled in place: 50,000 frames' token states at 12
                # exits are 10 GB, and chunk lists joined at the end would need twice that
                cache[k] = torch.empty((len(x), *part.shape[1:]), dtype=part.dtype, device=part.device)
            cache[k][start:start + len(part)] = part
    return cache


@dataclass(frozen=True)
class CachedSplit:
    """One split as heads train on it and are scored on it: what each exit gives a head (`cache_features`),
    each side kind's features of the frames, their labels and SNRs; not the frames themselves."""

    states: dict[int, torch.Tensor]
    sides: dict[str, torch.Tensor]
    y: np.ndarray
    snr_db: np.ndarray
    frame_shape: tuple[int, ...]


def cache_split(encoder: Encoder, task: str, split: str, settings: TrainSettings, exits: Sequence[int], pooling: str,
                kinds: Sequence[str], progress: bool = True) -> CachedSplit:
    """A split's cached features, made from the generator STREAM_PART frames at a time, so that its frames
    are never all in memory: for mean pooling a head reads one [D] vector per frame and exit (1.5 M
    modulation frames are 12 GB of I/Q and 0.8 GB of means at one exit). The same frames as
    `task_split` (xapp.data.generate_parts)."""
    n, device = settings.split_size(split), next(encoder.parameters()).device
    states: dict[int, torch.Tensor] = {}
    sides: dict[str, torch.Tensor] = {}
    labels, snr_db = [], []
    parts = generate_parts(task, n, split_seed(settings.seed, split), STREAM_PART)
    for number, (start, part) in enumerate(zip(range(0, n, STREAM_PART), parts)):
        desc = f"{task}/{split}" + (f" {number + 1}/{-(-n // STREAM_PART)}" if n > STREAM_PART else "")
        for k, features in cache_features(encoder, part.x, exits, settings.chunk, pooling, desc, progress).items():
            _fill(states, k, n, start, features)
        for kind in kinds:
            _fill(sides, kind, n, start, cache_side(kind, part.x, device))
        labels.append(part.y)
        snr_db.append(part.snr_db)
    return CachedSplit(states, sides, np.concatenate(labels), np.concatenate(snr_db), tuple(part.x.shape[1:]))


def _fill(into: dict, key: int | str, rows: int, start: int, part: torch.Tensor) -> None:
    """Put `part` at rows start.. of into[key], a tensor of `rows` rows made on first use."""
    if key not in into:
        into[key] = torch.empty((rows, *part.shape[1:]), dtype=part.dtype, device=part.device)
    into[key][start:start + len(part)] = part


def means_of(features: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """Cached features as a mean-pooling head reads them: token states [N, T, D] -> normalised means
    [N, D] (already-pooled features pass through)."""
    if features.ndim == 2:
        return features
    return torch.cat([normalised_mean(features[i:i + chunk]) for i in range(0, len(features), chunk)])


def cache_side(kind: str, x: np.ndarray, device: torch.device | str = "cpu", chunk: int = 4096) -> torch.Tensor:
    """Side features [N, width] of frames x complex [N, antennas, samples], on `device`, filled chunk by
    chunk into one tensor."""
    out = None
    for start in range(0, len(x), chunk):
        part = side_features(kind, torch.from_numpy(np.ascontiguousarray(x[start:start + chunk])))
        if out is None:
            out = torch.empty((len(x), *part.shape[1:]), dtype=part.dtype)
        out[start:start + len(part)] = part
        release_freed_memory()
    return out.to(device)


def head_logits(head: Head, features: torch.Tensor, side: torch.Tensor | None = None) -> torch.Tensor:
    return head.forward_pooled(features, side) if features.ndim == 2 else head(features.float(), side)


@torch.no_grad()
def predict(head: Head, features: torch.Tensor, side: torch.Tensor | None = None, batch: int = 512) -> torch.Tensor:
    """Logits [N, C] (on the CPU) of a head over cached features (and side features, for a head that
    reads them), run where the head's weights are."""
    head.eval()
    device = next(head.parameters()).device
    return torch.cat([head_logits(head, features[i:i + batch].to(device),
                                  None if side is None else side[i:i + batch].to(device)).cpu()
                      for i in range(0, len(features), batch)])


def accuracy(logits: torch.Tensor, y: np.ndarray) -> float:
    return float((logits.argmax(-1).numpy() == y).mean())


@dataclass(frozen=True)
class SideInputs:
    """Side features of one kind for the training and validation frames, and the frames' shape."""

    kind: str
    frame_shape: tuple[int, ...]
    train: torch.Tensor
    val: torch.Tensor


def fit_head(train: torch.Tensor, y_train: np.ndarray, val: torch.Tensor, y_val: np.ndarray, num_classes: int,
             settings: TrainSettings, seed: int, pooling: str | None = None,
             side: SideInputs | None = None) -> tuple[Head, float]:
    """Train one head on cached features (and side features, if given); returns the weights of its
    best validation epoch and that accuracy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # ops this small run slower on more threads, badly so on a shared CPU
    try:
        return _fit_head(train, y_train, val, y_val, num_classes, settings, seed, pooling or settings.poolings()[0],
                         side)
    finally:
        torch.set_num_threads(threads)


def new_head(dim: int, num_classes: int, settings: TrainSettings, pooling: str, side: str | None = None,
             frame_shape: Sequence[int] | None = None) -> Head:
    """An untrained head of the settings' shape for `pooling`, reading `side` features of frames of
    `frame_shape` beside the exit where one is named."""
    return Head(dim, num_classes, pooling=pooling, hidden=settings.hidden,
                queries=settings.queries if pooling == "attn" else 1,
                projections=settings.projections if pooling == "energy" else 0,
                side=side, frame_shape=frame_shape if side else None)


def _fit_head(train: torch.Tensor, y_train: np.ndarray, val: torch.Tensor, y_val: np.ndarray, num_classes: int,
              settings: TrainSettings, seed: int, pooling: str, side: SideInputs | None) -> tuple[Head, float]:
    torch.manual_seed(seed)
    head = new_head(train.shape[-1], num_classes, settings, pooling, side.kind if side else None,
                    side.frame_shape if side else None).to(train.device)
    side_train, side_val = (side.train, side.val) if side else (None, None)
    if side:
        head.set_side_scale(side_train)
    opt = torch.optim.AdamW(head.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    steps_per_epoch = math.ceil(len(train) / settings.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, settings.lr, total_steps=settings.epochs * steps_per_epoch,
                                                pct_start=0.1)
    y = torch.from_numpy(y_train).to(train.device)
    gen = torch.Generator().manual_seed(seed)
    best_acc, best_state = -1.0, None
    for _ in range(settings.epochs):
        head.train()
        order = torch.randperm(len(train), generator=gen).to(train.device)
        for i in range(0, len(train), settings.batch):
            idx = order[i:i + settings.batch]
            loss = F.cross_entropy(head_logits(head, train[idx], None if side is None else side_train[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        acc = accuracy(predict(head, val, side_val), y_val)
        if acc > best_acc:
            best_acc, best_state = acc, {k: v.clone() for k, v in head.state_dict().items()}
    head.load_state_dict(best_state)
    head.requires_grad_(False)
    return head.eval(), best_acc


def accuracy_by_snr(pred: np.ndarray, y: np.ndarray, snr_db: np.ndarray, width: float = SNR_BIN_DB) -> dict[float, dict]:
    """Accuracy per SNR bin, keyed by the bin's lower edge in dB."""
    edges = np.floor(snr_db / width) * width
    return {float(e): {"accuracy": float((pred[edges == e] == y[edges == e]).mean()), "n": int((edges == e).sum())}
            for e in np.unique(edges)}


def train_task(encoder: Encoder, task: str, settings: TrainSettings, out: Path,
               progress: bool = True, log: Callable[[str], None] = print) -> dict:
    """Train heads at every exit (or settings.exits) for one task; write their files under out/<task>/;
    return its manifest part."""
    spec = TASKS[task]
    exits = settings.exits_of(encoder.cfg.depth)
    t0 = time.perf_counter()
    poolings = settings.poolings()
    cached = "mean" if poolings == ("mean",) else "tokens"
    kinds = [kind for kind in settings.sides(task) if kind is not None]
    data = {split: cache_split(encoder, task, split, settings, exits, cached, kinds, progress) for split in SPLITS}
    t_cache = time.perf_counter() - t0
    frame_shape = data["test"].frame_shape
    tokens = encoder.cfg.tokens(*frame_shape)
    enc_flops = exit_flops(encoder.cfg, tokens)
    entries = []
    for k in tqdm(exits, desc=f"{task} heads", unit="exit", disable=not progress, leave=False):
        seed = settings.seed * 1000 + zlib.crc32(task.encode()) % 997 + k
        candidates = {}
        for pooling in poolings:
            feats = {split: means_of(data[split].states[k]) if pooling == "mean" else data[split].states[k]
                     for split in SPLITS}
            for kind in settings.sides(task):
                candidate = new_head(feats["train"].shape[-1], len(spec.classes), settings, pooling, kind, frame_shape)
                if candidate.flops(tokens) > HEAD_SHARE_LIMIT * enc_flops[k - 1]:
                    continue  # with its side features it would cost over the limit at this exit: not a candidate
                side = SideInputs(kind, frame_shape, data["train"].sides[kind], data["val"].sides[kind]) if kind else None
                head, val_acc = fit_head(feats["train"], data["train"].y, feats["val"], data["val"].y,
                                         len(spec.classes), settings, seed, pooling, side)
                val_logits = predict(head, feats["val"], data["val"].sides[kind] if kind else None)
                test_logits = predict(head, feats["test"], data["test"].sides[kind] if kind else None)
                candidates[candidate_name(pooling, kind)] = (head, val_acc, val_logits, test_logits,
                                                             accuracy(test_logits, data["test"].y))
        name = max(candidates, key=lambda c: candidates[c][1])  # the first tried on a tie
        head, val_acc, val_logits, test_logits, test_acc = candidates[name]
        fitted = calibrate(head, val_logits, data["val"].y)
        head = head.cpu()
        h_flops = head.flops(tokens)
        if h_flops > HEAD_SHARE_LIMIT * enc_flops[k - 1]:
            raise HeadCostError(f"{task} exit {k}: the head costs {h_flops:.3g} FLOPs/frame, over "
                                f"{100 * HEAD_SHARE_LIMIT:.0f} % of the trunk's {enc_flops[k - 1]:.3g} at that exit")
        file = Path(task) / f"exit{k}.safetensors"
        meta = {"task": task, "exit": k, "classes": list(spec.classes), "frame_shape": list(frame_shape),
                "val_accuracy": val_acc, "test_accuracy": test_acc}
        sha = save_head(out / file, head, meta)
        entry = {"task": task, "exit": k, "file": file.as_posix(), "sha256": sha, "classes": list(spec.classes),
                 "params": sum(p.numel() for p in head.parameters()),
                 "pooling": head.pooling, **({"side": head.side} if head.side else {}),
                 "encoder_gflops": enc_flops[k - 1] / 1e9, "head_gflops": h_flops / 1e9,
                 "gflops": (enc_flops[k - 1] + h_flops) / 1e9,
                 "val_accuracy": val_acc, "test_accuracy": test_acc, **fitted, "calibrated_on": VALIDATION}
        if len(candidates) > 1:
            entry["by_pooling"] = {p: {"val_accuracy": c[1], "test_accuracy": c[4]} for p, c in candidates.items()}
        if task == "modulation":
            entry["test_accuracy_by_snr"] = accuracy_by_snr(test_logits.argmax(-1).numpy(), data["test"].y,
                                                            data["test"].snr_db)
        entries.append(entry)
        log(f"{task:<13} exit {k}: {name:<10} val {100 * val_acc:5.1f}%  test {100 * test_acc:5.1f}%  "
            f"{entry['gflops']:.4f} GFLOPs/frame")
    info = {"classes": list(spec.classes), "frame_shape": list(frame_shape), "tokens": tokens,
            "splits": {s: {"n": settings.split_size(s), "seed": split_seed(settings.seed, s)} for s in SPLITS},
            "seconds": {"cache": round(t_cache, 1), "total": round(time.perf_counter() - t0, 1)}}
    return {"task": info, "heads": entries}


def train_all(encoder: Encoder, encoder_file: dict, tasks: Sequence[str], settings: TrainSettings, out: str | Path,
              command: str, progress: bool = True, log: Callable[[str], None] = print) -> Path:
    """Train every task's heads and write out/manifest.yaml; returns the manifest path."""
    out = Path(out)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"unknown task(s) {unknown}; known: {sorted(TASKS)}")
    manifest = {"command": command, "encoder": encoder_file, "settings": asdict(settings), "tasks": {}, "heads": []}
    for task in tasks:
        part = train_task(encoder, task, settings, out, progress, log)
        manifest["tasks"][task] = part["task"]
        manifest["heads"] += part["heads"]
    return write_manifest(out / MANIFEST, manifest)


def candidate_name(pooling: str, side: str | None) -> str:
    """A trained head's name among an exit's candidates: its pooling, and `+side` when it reads one."""
    return pooling if side is None else f"{pooling}+{side}"


def write_manifest(path: Path, manifest: dict) -> Path:
    header = ("# Heads at every exit of the frozen encoder, one file per task and exit, with their metrics.\n"
              "# Written by `xapp heads train` (and `xapp heads merge`); `command` below regenerates this\n"
              "# directory (a list: run them in order).\n"
              "# Paths in `file` are relative to this directory.\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(manifest, sort_keys=False, default_flow_style=None, width=120))
    return path


def commands(manifest: dict) -> list[str]:
    """The commands that regenerate a heads directory, in order (one, unless heads were merged in)."""
    command = manifest["command"]
    return [command] if isinstance(command, str) else list(command)


def merge_heads(source: str | Path, target: str | Path, command: str) -> Path:
    """Copy the heads in source/manifest.yaml into the heads directory `target`, each in place of
    target's head of the same task and exit; target's other heads stay. A source that holds every exit
    target has for a task replaces that task whole (its splits and settings too). One that holds some
    exits (`xapp heads train --exits`) must share the task's validation and test splits, so that every
    exit is still scored on the same frames; its heads then carry the settings that trained them.
    Both must be heads of the same encoder. Target's `command` becomes the commands that regenerate it,
    in order: its own, source's, this one."""
    source, target = Path(source), Path(target)
    src, dst = read_manifest(source / MANIFEST), read_manifest(target / MANIFEST)
    if src["encoder"]["sha256"] != dst["encoder"]["sha256"]:
        raise ManifestError(f"{source} holds heads of encoder {src['encoder']['sha256'][:16]}..., {target} of "
                            f"{dst['encoder']['sha256'][:16]}...: heads of different encoders cannot be merged")
    partial = set()  # tasks source replaces some exits of, not whole
    for task, info in src["tasks"].items():
        exits = {h["exit"] for h in src["heads"] if h["task"] == task}
        if task in dst["tasks"] and not exits >= {h["exit"] for h in dst["heads"] if h["task"] == task}:
            kept = dst["tasks"][task]["splits"]
            if any(info["splits"][split] != kept[split] for split in ("val", "test")):
                raise ManifestError(f"{source} holds {task} heads at exits {sorted(exits)} only, trained with "
                                    f"other validation or test frames than {target}'s: a merge of some exits "
                                    f"must keep the task's --val, --test and --seed")
            partial.add(task)
    for task in src["tasks"]:
        if task not in partial and (target / task).is_dir():
            shutil.rmtree(target / task)
        for head in (h for h in src["heads"] if h["task"] == task):
            (target / head["file"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / head["file"], target / head["file"])
    incoming = {(h["task"], h["exit"]): {**h, "settings": src["settings"]} if h["task"] in partial else h
                for h in src["heads"]}
    heads = [incoming.pop((h["task"], h["exit"]), h) for h in dst["heads"]
             if h["task"] in partial or h["task"] not in src["tasks"]]  # a partial task's heads replaced in place
    heads += incoming.values()  # whole tasks, and exits new to a partial one
    tasks = {**dst["tasks"], **{t: {**info, "settings": src["settings"]} for t, info in src["tasks"].items()
                                if t not in partial}}
    merged = {**dst, "command": [*commands(dst), *commands(src), command], "tasks": tasks, "heads": heads}
    return write_manifest(target / MANIFEST, merged)


def calibrate_heads(directory: str | Path, encoder: Encoder, tasks: Sequence[str] | None, command: str,
                    recordings: Mapping[str, tuple[np.ndarray, np.ndarray, str]] | None = None, log=print,
                    windows: Sequence[int] = ()) -> Path:
    """Refit the temperature of every head of `tasks` (default: all) in a heads directory on its task's
    validation split, or on `recordings[task]` = (frames, labels, source) where given (an operator's own
    labelled frames: a site whose frames differ from ours); with `windows` (counts of 2 or more), also
    each head's window exponent on validation captures of those lengths (`calibrate_windows`). Rewrite
    the head files and the manifest (new sha256s, what was fitted, calibration errors and what they were
    fitted on; `command` appended to the commands that regenerate it). Returns the manifest path."""
    directory = Path(directory)
    path = directory / MANIFEST
    manifest = read_manifest(path)
    by_file = {h["file"]: h for h in manifest["heads"]}
    for task in tasks or list(manifest["tasks"]):
        split = manifest["tasks"][task]["splits"]["val"]
        if recordings and task in recordings:
            x, y, source = recordings[task]
        else:
            val = generate(task, split["n"], split["seed"])
            x, y, source = val.x, val.y, VALIDATION
        entries = task_heads(manifest, task, path)
        loaded = {e["exit"]: load_head(e["path"], e["sha256"]) for e in entries}
        for head, _ in loaded.values():
            head.temperature = 1.0
        heads = {k: head for k, (head, _) in loaded.items()}
        logits = exit_logits(encoder, heads, x)
        fitted = {e["exit"]: calibrate(heads[e["exit"]], logits[e["exit"]], y) for e in entries}
        captures = {}  # windows -> (each head's logits on the captures' windows, capture labels)
        for n in windows:
            data = generate(task, split["n"], split["seed"], samples=n * manifest["tasks"][task]["frame_shape"][1])
            captures[n] = exit_logits(encoder, heads, capture_windows(data.x, n)), data.y
        for entry in entries:
            head, meta = loaded[entry["exit"]]
            k = entry["exit"]
            line = (f"{task:<13} exit {k:>2}: temperature {fitted[k]['temperature']:.2f}, calibration error on "
                    f"{source} {100 * fitted[k]['val_calibration_error_uncalibrated']:.1f} -> "
                    f"{100 * fitted[k]['val_calibration_error']:.1f} points")
            if captures:
                fitted[k] |= calibrate_windows(head, {n: (by_exit[k], y_n) for n, (by_exit, y_n) in captures.items()})
                fitted[k]["windows_calibrated_on"] = f"validation captures of {', '.join(map(str, windows))} windows"
                line += f"; window exponent {head.window_exponent:.2f}, over " + ", ".join(
                    f"{n} windows {100 * fitted[k]['val_window_calibration_error_mean_rule'][n]:.1f} -> "
                    f"{100 * fitted[k]['val_window_calibration_error'][n]:.1f}" for n in windows)
            meta = {key: v for key, v in meta.items() if key not in ("format", "spec")}
            by_file[entry["file"]] |= {"sha256": save_head(entry["path"], head, meta), **fitted[k], "calibrated_on": source}
            log(line)
    manifest["command"] = [*([manifest["command"]] if isinstance(manifest["command"], str) else manifest["command"]),
                           command]
    return write_manifest(path, manifest)
