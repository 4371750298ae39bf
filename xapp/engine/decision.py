"""What the engine hands to the publishers for one served frame."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Decision:
    node_id: str
    task: str
    label: str
    class_index: int
    confidence: float
    exit: int  # encoder block whose output the head read
    gflops: float  # encoder + head GFLOPs spent on this frame
    seq: int
    cell_id: str
    t_node_ns: int  # node timestamp (wall clock at the node)
    t_arrival_ns: int  # wall clock when the indication reached the xApp
    t_decision_ns: int  # wall clock when the decision was released
    policy: str = "fixed"  # exit policy that produced it
    truth: str | None = None  # ground-truth label when a simulator sent one (never published)

    @property
    def latency_s(self) -> float:
        """Indication-to-decision latency as measured against the node's clock."""
        return (self.t_decision_ns - self.t_node_ns) / 1e9
