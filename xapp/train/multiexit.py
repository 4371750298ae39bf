"""The labelled second stage: the pre-trained trunk with a linear head per task at every exit, trained
on the xApp's in-distribution tasks with the cross-entropy of every exit (deep supervision), so that
each block, not only the last, carries what the tasks need. The heads of this stage are discarded;
the served heads are trained afterwards on the frozen trunk (`xapp heads train`). `los` and
`fingerprint` never enter this stage: they stay a test of transfer."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from xapp.data import PRETRAIN_TASKS, TASKS
from xapp.model.encoder import Encoder
from xapp.model.heads import Head, normalised_mean
from xapp.train.mae import through_blocks

LabelledGroup = tuple[str, torch.Tensor, torch.Tensor]  # task, frames [B, A, S], labels [B]


class MultiExitClassifier(nn.Module):
    def __init__(self, encoder: Encoder, tasks: Sequence[str], layer_drop: float = 0.0):
        super().__init__()
        unseen = [t for t in tasks if t not in PRETRAIN_TASKS]
        if unseen or not tasks:
            raise ValueError(f"labelled tasks must be among {PRETRAIN_TASKS} (los and fingerprint stay unseen), "
                             f"got {list(tasks)}")
        cfg = encoder.cfg
        self.encoder, self.layer_drop = encoder, layer_drop
        self.heads = nn.ModuleDict({
            task: nn.ModuleList(Head(cfg.dim, len(TASKS[task].classes)) for _ in range(cfg.depth)) for task in tasks
        })

    def forward(self, groups: Sequence[LabelledGroup], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Cross-entropy per task (mean over exits) and, as "loss", their mean; accuracy per task at
        the first and last exit as `acc_<task>_<exit>` (no gradient)."""
        tokens = torch.cat([self.encoder.patch_embed(x) for _, x, _ in groups])
        h = self.encoder.with_cls(tokens)
        depth = len(self.encoder.blocks)
        states = list(through_blocks(self.encoder.blocks, h, self.layer_drop if self.training else 0.0, generator))
        # A head reads the normalised mean of its exit's tokens (Head.forward_pooled, exact): one per
        # exit, shared by every task, then one batched matmul per task for all its exits, in place of
        # depth x tasks small heads (hundreds of kernel launches per step on a GPU).
        pooled = torch.stack([normalised_mean(state) for state in states])  # [depth, N, D]
        losses: dict[str, torch.Tensor] = {}
        start = 0
        for task, x, y in groups:
            rows = slice(start, start + len(x))
            start += len(x)
            logits = exit_logits(self.heads[task], pooled[:, rows])  # [depth, B, classes]
            losses[f"ce_{task}"] = F.cross_entropy(logits.flatten(0, 1).float(), y.repeat(depth))
            with torch.no_grad():
                for k in (1, depth):
                    losses[f"acc_{task}_{k}"] = (logits[k - 1].argmax(-1) == y).float().mean()
        losses["loss"] = torch.stack([v for k, v in losses.items() if k.startswith("ce_")]).mean()
        return losses


def exit_logits(heads: Sequence[Head], pooled: torch.Tensor) -> torch.Tensor:
    """Logits [depth, B, classes] of one linear head per exit over normalised means [depth, B, D]: what
    each head's forward_pooled gives, computed as one batched matmul over the stacked weights."""
    scale = torch.stack([h.norm.weight for h in heads])[:, None]
    shift = torch.stack([h.norm.bias for h in heads])[:, None]
    weight = torch.stack([h.out.weight for h in heads]).transpose(1, 2)
    bias = torch.stack([h.out.bias for h in heads])[:, None]
    return torch.baddbmm(bias, pooled * scale + shift, weight)
