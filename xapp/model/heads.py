"""Per-task heads: small modules that read the hidden states of one exit (and, for some, a few
classical side features of the raw frame: xapp.model.side)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from xapp.model.flops import head_flops, pooled_width
from xapp.model.safefile import WeightsFileError, read_weights, write_weights
from xapp.model.side import class_aligned, side_features, side_flops, side_width

FORMAT = "xapp-head-v1"


class AttentionPool(nn.Module):
    """Learned queries attending over the tokens; their pooled vectors are concatenated."""

    def __init__(self, dim: int, queries: int = 1):
        super().__init__()
        self.query = nn.Parameter(torch.zeros(dim) if queries == 1 else torch.randn(dim, queries) * dim**-0.5)
        self.scale = dim**-0.5

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        query = self.query[:, None] if self.query.ndim == 1 else self.query
        weights = torch.softmax((h @ query) * self.scale, dim=1)  # [B, T, queries]
        return (weights.transpose(1, 2) @ h).flatten(1)


class EnergyPool(nn.Module):
    """The tokens' mean, beside second- and fourth-order statistics over tokens: for each of
    `projections` learned projections of a token, the log of the mean over tokens of its square and
    of its fourth power. The mean of nonlinear token states drops how their energy spreads over
    the frame, which is what tells apart emitters whose hardware differs (IQ imbalance, amplifier
    compression) and what the classical baselines' cumulants and beam energies measure."""

    def __init__(self, dim: int, projections: int):
        super().__init__()
        self.proj = nn.Linear(dim, projections, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        square = self.proj(h).square()
        return torch.cat([h.mean(dim=1), (square.mean(dim=1) + 1e-4).log(),
                          (square.square().mean(dim=1) + 1e-4).log()], dim=-1)


POOLINGS = ("mean", "attn", "energy")
# Initial gain on class-aligned side features (log10 energy shares): sharp enough that a new head starts
# as their argmax (two beams 0.05 apart in log10 share differ by 5 in logit); training moves it. At a
# gain of 1 the MLP drowns them and the beam head stays 2 points under the DFT (docs/research.md).
ALIGNED_SIDE_GAIN = 100.0


class Head(nn.Module):
    """LayerNorm -> pooling (mean over tokens, attention with `queries` learned queries, or the mean
    with energies of `projections` learned projections) -> [Linear -> GELU] -> Linear.

    With `side` (a kind of xapp.model.side, on frames of `frame_shape`) the head also reads those
    features of the raw frame, standardised by the training set's `side_mean`/`side_std`, beside the
    pooled vector; class-aligned side features are also added to the logits, times a learned gain.

    `temperature` divides the logits: fitted after training (`fit_temperature`) so that the top
    softmax probability, the confidence each decision carries, is as often right as it says.
    `window_exponent` sets how a capture read in N windows is decided (`fuse_windows`): the sum of the
    windows' log-probabilities over N ** window_exponent (1: their mean, 0: their sum), fitted the same way."""

    def __init__(self, dim: int, num_classes: int, pooling: str = "mean", hidden: int = 0, queries: int = 1,
                 projections: int = 0, side: str | None = None, frame_shape: Sequence[int] | None = None,
                 temperature: float = 1.0, window_exponent: float = 1.0):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if not 0 <= window_exponent <= 1:
            raise ValueError(f"window_exponent must lie in [0, 1], got {window_exponent}")
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        if queries < 1 or (pooling != "attn" and queries != 1):
            raise ValueError(f"queries must be 1 unless pooling is attention (then >= 1), got {queries}")
        if (pooling == "energy") != (projections > 0):
            raise ValueError(f"projections must be >= 1 for energy pooling and 0 otherwise, got {projections}")
        if side is not None and frame_shape is None:
            raise ValueError(f"a head with side features {side!r} needs the frame shape they are computed on")
        self.dim, self.num_classes, self.pooling, self.hidden = dim, num_classes, pooling, hidden
        self.queries, self.projections = queries, projections
        self.temperature = float(temperature)
        self.window_exponent = float(window_exponent)
        self.side = side
        self.frame_shape = tuple(int(s) for s in frame_shape) if side is not None else None
        self.side_width = extra = side_width(side, self.frame_shape) if side is not None else 0
        self.norm = nn.LayerNorm(dim)
        self.pool = (AttentionPool(dim, queries) if pooling == "attn" else
                     EnergyPool(dim, projections) if pooling == "energy" else None)
        pooled = pooled_width(dim, queries, projections) + extra
        width = hidden or pooled
        self.mlp = nn.Sequential(nn.Linear(pooled, hidden), nn.GELU()) if hidden else nn.Identity()
        self.out = nn.Linear(width, num_classes)
        if side is not None:
            self.register_buffer("side_mean", torch.zeros(extra))
            self.register_buffer("side_std", torch.ones(extra))
            if class_aligned(side):
                if extra != num_classes:
                    raise ValueError(f"side features {side!r} score {extra} classes, the head has {num_classes}")
                self.side_gain = nn.Parameter(torch.tensor(ALIGNED_SIDE_GAIN))

    def side_inputs(self, frames: torch.Tensor) -> torch.Tensor | None:
        """What this head reads beside its exit, of complex frames [B, antennas, samples]; None if nothing."""
        return side_features(self.side, frames) if self.side is not None else None

    def set_side_scale(self, side: torch.Tensor) -> None:
        """Standardise side features as in `side` [N, width], the training frames' own."""
        self.side_mean.copy_(side.mean(dim=0))
        self.side_std.copy_(side.std(dim=0).clamp_min(1e-6))

    def features(self, h: torch.Tensor) -> torch.Tensor:
        h = self.norm(h)
        return self.pool(h) if self.pool is not None else h.mean(dim=1)

    def forward(self, h: torch.Tensor, side: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of token states h [B, T, D] (and `side_inputs` of the same frames, for a side head)."""
        return self._logits(self.features(h), side)

    def forward_pooled(self, z: torch.Tensor, side: torch.Tensor | None = None) -> torch.Tensor:
        """Logits from `normalised_mean(h)` [B, D]; equals forward(h) for mean pooling, because the
        LayerNorm's affine is the same for every token and so commutes with the mean. Lets training
        run on one [D] vector per frame instead of [T, D] token states."""
        if self.pool is not None:
            raise ValueError("forward_pooled needs a mean-pooling head")
        return self._logits(z * self.norm.weight + self.norm.bias, side)

    def _logits(self, pooled: torch.Tensor, side: torch.Tensor | None) -> torch.Tensor:
        if self.side is None:
            logits = self.out(self.mlp(pooled))
        elif side is None:
            raise ValueError(f"this head reads {self.side!r} side features of the frames: pass side_inputs(frames)")
        else:
            side = side.to(pooled.dtype)
            logits = self.out(self.mlp(torch.cat([pooled, (side - self.side_mean) / self.side_std], dim=-1)))
            if class_aligned(self.side):
                logits = logits + self.side_gain * side
        return logits if self.temperature == 1.0 else logits / self.temperature

    @property
    def side_flops(self) -> float:
        """FLOPs per frame of computing its side features (0 without)."""
        return side_flops(self.side, self.frame_shape) if self.side is not None else 0.0

    def flops(self, tokens: int) -> float:
        """FLOPs per frame of this head on `tokens` token states, its side features included."""
        return self.side_flops + head_flops(self.dim, self.num_classes, self.hidden, self.pooling, tokens, self.queries,
                                            self.projections, self.side_width)

    def spec(self) -> dict:
        spec = {"dim": self.dim, "num_classes": self.num_classes, "pooling": self.pooling, "hidden": self.hidden}
        if self.queries != 1:
            spec["queries"] = self.queries
        if self.projections:
            spec["projections"] = self.projections
        if self.side is not None:
            spec["side"], spec["frame_shape"] = self.side, list(self.frame_shape)
        if self.temperature != 1.0:
            spec["temperature"] = self.temperature
        if self.window_exponent != 1.0:
            spec["window_exponent"] = self.window_exponent
        return spec

    def fuse_windows(self, logits: torch.Tensor, windows: int) -> torch.Tensor:
        """Logits [n * windows, C] of n captures' windows (each capture's in a row) -> one set [n, C] per
        capture: the sum of the windows' log-probabilities over windows ** window_exponent. The mean
        (exponent 1) treats the windows as one look; the sum (0) as independent evidence."""
        log_p = logits.float().log_softmax(dim=-1).reshape(-1, windows, logits.shape[-1])
        return log_p.sum(dim=1) / windows ** self.window_exponent


def side_flops_once(heads: Iterable[Head]) -> float:
    """FLOPs per frame of the side features a set of heads reads (one task's, at several exits), each
    kind computed once per frame however many heads read it."""
    return sum({head.side: head.side_flops for head in heads if head.side is not None}.values())


def read_head(head: Head, h: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """A head's logits on the token states h of `frames` (complex [B, antennas, samples]), computing
    its side features when it reads some: the one call for paths that hold the frames beside h."""
    return head(h, head.side_inputs(frames))


def normalised_mean(h: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Token states [B, T, D] -> mean over tokens of each token's LayerNorm normalisation (no affine)."""
    return F.layer_norm(h.float(), h.shape[-1:], eps=eps).mean(dim=1)


def save_head(path: str | Path, head: Head, meta: dict) -> str:
    """Write a head with its metadata (task, exit, classes, ...); returns the file's sha256."""
    return write_weights(path, head.state_dict(), {"format": FORMAT, "spec": head.spec(), **meta})


def load_head(path: str | Path, sha256: str | None = None) -> tuple[Head, dict]:
    tensors, meta = read_weights(path, sha256)
    if meta.get("format") != FORMAT:
        raise WeightsFileError(f"{path}: not a head file (format {meta.get('format')!r}, want {FORMAT!r})")
    head = Head(**meta["spec"])
    try:
        head.load_state_dict(tensors)
    except RuntimeError as exc:
        raise WeightsFileError(f"{path}: weights do not match the head spec {meta['spec']} ({exc})") from exc
    head.requires_grad_(False)
    return head.eval(), meta


class HeadMismatchError(WeightsFileError):
    """A readable head that was trained for another task, exit, encoder width or class list."""


def load_task_head(path: str | Path, sha256: str | None, task: str, exit_: int, dim: int | None,
                   classes: Sequence[str] | None) -> tuple[Head, tuple[str, ...]]:
    """Load the head that serves `task` at `exit_` and check it was trained for exactly that (task,
    exit, encoder width `dim`, `classes`; None skips a check). The one check that both
    `xapp descriptor validate` and the running xApp apply, so they refuse the same files with the
    same message. Returns the head and its class names."""
    head, meta = load_head(path, sha256)
    if meta.get("task") != task:
        raise HeadMismatchError(f"{path} is a head for task {meta.get('task')!r}")
    if meta.get("exit") != exit_:
        raise HeadMismatchError(f"{path} was trained at exit {meta.get('exit')}, configured at exit {exit_}")
    if dim is not None and head.dim != dim:
        raise HeadMismatchError(f"{path} reads dim {head.dim}, the encoder has dim {dim}")
    head_classes = tuple(meta.get("classes") or ())
    if classes is not None and head_classes != tuple(classes):
        raise HeadMismatchError(f"{path} has classes {head_classes}, expected {tuple(classes)}")
    return head, head_classes
