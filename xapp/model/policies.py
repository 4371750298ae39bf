"""Exit policies: when a row may leave the trunk at an exit before its task's last one.

The engine and the offline dynamic-exit evaluation (xapp/train/dynamic.py) both decide with these
functions, so the curves in docs/results.md are what the served xApp does.

fixed       always the task's exit (no earlier exits are tried)
entropy     BranchyNet: leave when the normalised entropy of the softmax is <= threshold
confidence  Shallow-Deep Networks: leave when the top softmax probability is >= threshold
patience    PABEE: leave when `patience` consecutive evaluated exits agree on the label
            (PABEE's patience t is our patience t + 1: we count the first exit of the run too)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

KINDS = ("fixed", "entropy", "confidence", "patience")


@dataclass(frozen=True)
class Policy:
    kind: str = "fixed"
    threshold: float = 0.0
    patience: int = 2

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown exit policy {self.kind!r}; expected one of {KINDS}")
        if self.kind == "patience" and self.patience < 2:
            raise ValueError(f"patience must be >= 2, got {self.patience}")

    @property
    def dynamic(self) -> bool:
        return self.kind != "fixed"


def normalised_entropy(probs: torch.Tensor) -> torch.Tensor:
    """Entropy of each row of `probs` [N, C] divided by log(C): 0 = certain, 1 = uniform."""
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum(dim=-1)
    return entropy / math.log(probs.shape[-1])


def confident(policy: Policy, probs: torch.Tensor) -> torch.Tensor:
    """Rows [N] that the entropy or confidence criterion lets leave now, given softmax `probs` [N, C]."""
    if policy.kind == "entropy":
        return normalised_entropy(probs) <= policy.threshold
    if policy.kind == "confidence":
        return probs.max(dim=-1).values >= policy.threshold
    raise ValueError(f"policy {policy.kind!r} is not a per-exit confidence criterion")


def patience_update(streak: torch.Tensor, last: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Carry each row's run of agreeing exits: returns (new streak, new last label)."""
    streak = torch.where(labels == last, streak + 1, torch.ones_like(streak))
    return streak, labels
