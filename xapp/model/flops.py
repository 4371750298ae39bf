"""Analytic FLOP counts (a multiply-add is 2 FLOPs, as torch's FlopCounterMode counts matmuls).

Counted: every matmul (patch projection, qkv, attention scores, attention-weighted values, output
projection, MLP) and the head's linear layers. Not counted: norms, activations, softmax, additions,
which torch's counter also leaves out."""

from __future__ import annotations

from xapp.model.config import EncoderConfig


def patch_embed_flops(cfg: EncoderConfig, tokens: int) -> float:
    return 2.0 * (tokens - 1) * cfg.patch_values * cfg.dim


def block_flops(cfg: EncoderConfig, tokens: int) -> float:
    d, t = cfg.dim, tokens
    hidden = int(d * cfg.mlp_ratio)
    projections = 2.0 * t * d * (3 * d) + 2.0 * t * d * d
    attention = 2 * (2.0 * t * t * d)
    mlp = 2 * (2.0 * t * d * hidden)
    return projections + attention + mlp


def pooled_width(dim: int, queries: int = 1, projections: int = 0) -> int:
    """Width of a head's pooled vector: dim per query, plus energy pooling's two moments per projection."""
    return dim * queries + 2 * projections


def head_flops(dim: int, num_classes: int, hidden: int = 0, pooling: str = "mean", tokens: int = 65,
               queries: int = 1, projections: int = 0, side: int = 0) -> float:
    """A head's FLOPs per frame; `side`: side features read beside the pooled vector (their own cost
    is xapp.model.side.side_flops)."""
    if pooling == "attn":
        pool = 4.0 * tokens * dim * queries  # scores + weighted sum
    else:
        pool = 2.0 * tokens * dim * projections  # energy pooling's projections of every token
    pooled = pooled_width(dim, queries, projections) + side
    if hidden:
        return pool + 2.0 * pooled * hidden + 2.0 * hidden * num_classes
    return pool + 2.0 * pooled * num_classes


def exit_flops(cfg: EncoderConfig, tokens: int = 65) -> list[float]:
    """FLOPs per frame to reach exit k (list index k-1), patch embedding included, head excluded."""
    embed, block = patch_embed_flops(cfg, tokens), block_flops(cfg, tokens)
    return [embed + k * block for k in range(1, cfg.depth + 1)]
