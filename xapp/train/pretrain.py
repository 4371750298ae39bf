"""Pre-training of the encoder on fresh synthetic data every step, with checkpoints and resume.

Two stages share this loop: `stage: mae` (self-supervised, xapp/train/mae.py) and `stage: labelled`
(cross-entropy at every exit on modulation, interference and beam, xapp/train/multiexit.py), which
starts from the encoder of an earlier run (`init_from`: its run directory or an encoder file).

A run directory holds `train.safetensors` (model + optimizer, written every `checkpoint_every`
steps), `state.json` (step, loss history, wall time) and `loss.png`. Re-running the same command
resumes from the last checkpoint; data and masks are derived from (seed, step), so a resumed run
sees exactly the batches an uninterrupted one would."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from tqdm import tqdm

from xapp.model.config import EncoderConfig
from xapp.model.encoder import Encoder
from xapp.model.precision import device_autocast
from xapp.model.safefile import read_weights, write_weights
from xapp.train.mae import MaskedAutoencoder, without_waiting


STAGES = ("mae", "labelled")
LABELLED_SEED_BASE = 50_000_000  # far from the head splits' and the probe's data seeds
RATE_FROM_STEP = 10  # a time budget's rate is measured from here to the end of the warm-up (start-up excluded)


@dataclass(frozen=True)
class PretrainConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    steps: int = 3000
    batch: int = 128
    lr: float = 5e-4
    warmup: int = 150
    weight_decay: float = 0.05
    mask_ratio: float = 0.7
    decoder_dim: int = 128
    decoder_depth: int = 2
    frame_weight: float = 0.0  # > 0: also learn frame-level views from every exit (xapp/train/mae.py)
    frame_pass: str = "masked"
    distill_weight: float = 0.0  # > 0: shallower exits predict the deepest exit's pooled state
    layer_drop: float = 0.0  # block l dropped per frame with probability layer_drop * l / depth
    stage: str = "mae"  # mae | labelled
    init_from: str = ""  # run directory or encoder file to start from ("": random init)
    labelled_tasks: tuple[str, ...] = ("modulation", "interference", "beam")
    seed: int = 0
    checkpoint_every: int = 100
    threads: int = 0  # 0: torch's default

    @classmethod
    def from_yaml(cls, path: str | Path | None, **overrides) -> "PretrainConfig":
        data = yaml.safe_load(Path(path).read_text()) if path else {}
        data = {**(data or {}), **{k: v for k, v in overrides.items() if v is not None}}
        enc = data.pop("encoder", {}) or {}
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"{path}: unknown pre-training settings {sorted(unknown)}")
        if "labelled_tasks" in data:
            data["labelled_tasks"] = tuple(data["labelled_tasks"])
        return cls(encoder=EncoderConfig(**enc), **data)

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")

    def as_dict(self) -> dict:
        """JSON-shaped (tuples as lists), as the run directory's config.json holds it."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


def learning_rate(cfg: PretrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def frames_for_step(cfg: PretrainConfig, step: int) -> list:
    """The step's frames as numpy arrays (picklable, so worker processes can make them). MAE: unlabelled
    frame groups, one per frame shape. Labelled: (task, frames, labels) per task."""
    from xapp.data import generate, pretrain_mixture

    seed = cfg.seed * 1_000_003 + step
    if cfg.stage == "labelled":
        share = max(1, cfg.batch // len(cfg.labelled_tasks))
        return [(task, d.x, d.y) for task, d in
                ((task, generate(task, share, LABELLED_SEED_BASE + seed)) for task in cfg.labelled_tasks)]
    return [x for x in pretrain_mixture(cfg.batch, seed=seed).values() if len(x)]


def to_device(frames: list, device: str) -> list:
    def move(a):
        return without_waiting(torch.from_numpy(a), device)

    return [(item[0], move(item[1]), move(item[2])) if isinstance(item, tuple) else move(item) for item in frames]


def batch_for_step(cfg: PretrainConfig, step: int, device: str) -> list:
    return to_device(frames_for_step(cfg, step), device)


class FrameSource:
    """Each step's frames, made ahead of the training loop: on one thread (numpy releases the GIL), or on
    `workers` processes (a GPU outruns one core's generators). Steps come back in order, so the batches are
    the same either way."""

    def __init__(self, cfg: PretrainConfig, first: int, end: int, workers: int = 0):
        self.cfg, self.next_step, self.end = cfg, first, end
        self.ahead = max(1, 2 * workers)
        if workers:
            import multiprocessing

            self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_single_threaded_worker)
        else:
            self.pool = ThreadPoolExecutor(max_workers=1)
        self.pending: deque = deque()
        self._fill()

    def _fill(self) -> None:
        while len(self.pending) < self.ahead and self.next_step < self.end:
            self.pending.append(self.pool.submit(frames_for_step, self.cfg, self.next_step))
            self.next_step += 1

    def extend(self, end: int) -> None:
        self.end = end
        self._fill()

    def next(self) -> tuple[list, float]:
        """The next step's frames and the seconds spent waiting for them."""
        t0 = time.monotonic()
        frames = self.pending.popleft().result()
        waited = time.monotonic() - t0
        self._fill()
        return frames, waited

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)


def _single_threaded_worker() -> None:
    import xapp.data.tasks

    xapp.data.tasks.WORKERS = 1
    torch.set_num_threads(1)


def initial_encoder(cfg: PretrainConfig) -> Encoder:
    """A fresh encoder, or for the labelled stage the fp32 encoder of `init_from`."""
    if not cfg.init_from:
        return Encoder(cfg.encoder)
    source = Path(cfg.init_from)
    if source.is_dir():
        tensors, _ = read_weights(source / "train.safetensors")
        encoder = Encoder(cfg.encoder)
        encoder.load_state_dict({k[len("model.encoder."):]: v for k, v in tensors.items()
                                 if k.startswith("model.encoder.")})
        return encoder
    from xapp.model.checkpoint import load_encoder

    encoder = load_encoder(source).requires_grad_(True)
    if encoder.cfg != cfg.encoder:
        raise ValueError(f"{source}: encoder config {encoder.cfg} differs from this run's {cfg.encoder}")
    return encoder


def build(cfg: PretrainConfig) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(cfg.seed)
    if cfg.stage == "labelled":
        from xapp.train.multiexit import MultiExitClassifier

        model = MultiExitClassifier(initial_encoder(cfg), cfg.labelled_tasks, cfg.layer_drop)
    else:
        model = MaskedAutoencoder(initial_encoder(cfg), cfg.decoder_dim, cfg.decoder_depth, mask_ratio=cfg.mask_ratio,
                                  frame_weight=cfg.frame_weight, frame_pass=cfg.frame_pass,
                                  distill_weight=cfg.distill_weight, layer_drop=cfg.layer_drop)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr, betas=(0.9, 0.95),
    )
    return model, optimizer


def save_checkpoint(run: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    for index, slots in optimizer.state_dict()["state"].items():
        for name, value in slots.items():
            tensors[f"optim.{index}.{name}"] = torch.as_tensor(value)
    tmp = run / "train.safetensors.tmp"
    write_weights(tmp, tensors, {"step": state["step"]})
    tmp.replace(run / "train.safetensors")
    (run / "state.json").write_text(json.dumps(state, indent=1))


def load_checkpoint(run: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    tensors, _ = read_weights(run / "train.safetensors")
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    opt_state = optimizer.state_dict()
    slots: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            slots.setdefault(int(index), {})[name] = value
    opt_state["state"] = slots
    optimizer.load_state_dict(opt_state)
    return json.loads((run / "state.json").read_text())


def pretrain(cfg: PretrainConfig, run: str | Path, device: str = "auto", progress: bool = True,
             stop_after: int | None = None, data_workers: int = 0,
             time_budget_s: float | None = None) -> tuple[Encoder, dict]:
    """Train (or resume) to cfg.steps; `stop_after` ends early after that many steps this call (tests).

    `data_workers` > 0 makes the frames on that many processes. `time_budget_s` sets the number of steps
    so that the run ends within that many seconds: the rate is measured over the warm-up (whose learning
    rate does not depend on the total), then the total is fixed and written into the run's config.json
    (and state["steps"]), so the run stays resumable with `--steps` set to it."""
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    model, optimizer = build(cfg)
    config_file = run / "config.json"
    if (run / "train.safetensors").exists():
        saved = json.loads(config_file.read_text())
        if saved != cfg.as_dict():
            raise ValueError(f"{run}: holds a run with a different config; use another --out or the same config")
        state = load_checkpoint(run, model, optimizer)
    else:
        config_file.write_text(json.dumps(cfg.as_dict(), indent=1))
        state = {"step": 0, "losses": [], "wall_s": 0.0, "device": device}
    calibrate_at = None
    if time_budget_s is not None:
        if state["step"] or cfg.warmup < 2 * RATE_FROM_STEP:
            raise ValueError("a time budget needs a fresh run with warmup >= 20 steps (the rate is measured over it)")
        calibrate_at = cfg.warmup
    model.to(device).train()
    stop_at = float("inf") if stop_after is None else state["step"] + stop_after
    end = min(cfg.steps, stop_at)
    precision = device_autocast(torch.device(device))
    bar = tqdm(total=cfg.steps, initial=state["step"], disable=not progress, desc="pretrain", unit="step")
    started = time.monotonic()
    wall_before = state["wall_s"]
    state.setdefault("data_wait_s", 0.0)
    pending: list[dict[str, torch.Tensor]] = []  # losses not yet read back (each .item() would sync a GPU)
    source = FrameSource(cfg, state["step"], end, data_workers)
    try:
        while state["step"] < end:
            step = state["step"]
            if step == RATE_FROM_STEP:
                rate_from = time.monotonic()
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(cfg, step)
            generator = torch.Generator().manual_seed(cfg.seed * 7_919 + step)
            frames, waited = source.next()
            state["data_wait_s"] += waited
            with precision:
                losses = model(to_device(frames, device), generator)
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            pending.append({k: v.detach() for k, v in losses.items()})
            state["step"] = step + 1
            bar.update(1)
            if state["step"] == calibrate_at:
                rate = (calibrate_at - RATE_FROM_STEP) / (time.monotonic() - rate_from)
                left = time_budget_s - (time.monotonic() - started)
                cfg = dataclasses.replace(cfg, steps=calibrate_at + max(0, int(rate * left)))
                end = min(cfg.steps, stop_at)
                config_file.write_text(json.dumps(cfg.as_dict(), indent=1))
                source.extend(end)
                bar.total = end
                print(f"time budget {time_budget_s:.0f} s: {rate:.2f} steps/s -> {end} steps", flush=True)
            checkpoint = state["step"] % cfg.checkpoint_every == 0 or state["step"] == end
            if len(pending) >= 25 or checkpoint:
                _record_losses(state, pending)
                bar.set_postfix(loss=f"{state['losses'][-1]:.4f}")
            state["wall_s"] = wall_before + time.monotonic() - started
            if checkpoint:
                save_checkpoint(run, model, optimizer, state)
                plot_loss(state["losses"], run / "loss.png")
    finally:
        source.close()
    bar.close()
    state["steps"] = cfg.steps
    return model.encoder.eval(), state


def _record_losses(state: dict, pending: list[dict[str, torch.Tensor]]) -> None:
    names = list(pending[0])
    values = torch.stack([torch.stack([step[n].float() for n in names]) for step in pending]).tolist()
    for row in values:
        for name, value in zip(names, row):
            if name == "loss":
                state["losses"].append(round(value, 6))
            else:
                state.setdefault("view_losses", {}).setdefault(name, []).append(round(value, 4))
    pending.clear()


def plot_loss(losses: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps = np.arange(1, len(losses) + 1)
    ax.plot(steps, losses, lw=0.5, alpha=0.4, label="step")
    window = min(50, len(losses))
    if window > 1:
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1:], smooth, lw=1.5, label=f"mean of {window}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.set_title("pre-training loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

