"""What the engine hands to the publishers: one served frame's Decision, or a batch of them as columns."""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass, fields


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


@dataclass(frozen=True, slots=True)
class DecisionBatch:
    """Decisions released together, as columns (one entry per frame): what the engine builds per
    exit with array operations, and what the publishers serialise in one pass. Iterating yields
    Decision objects for consumers that want one at a time."""

    node_id: list[str]
    task: list[str]
    label: list[str]
    class_index: list[int]
    confidence: list[float]
    exit: list[int]
    gflops: list[float]
    seq: list[int]
    cell_id: list[str]
    t_node_ns: list[int]
    t_arrival_ns: list[int]
    t_decision_ns: list[int]
    policy: list[str]
    truth: list[str | None]

    def __len__(self) -> int:
        return len(self.node_id)

    def __iter__(self) -> Iterator[Decision]:
        return map(Decision, *(getattr(self, f) for f in _COLUMNS))

    def of_tasks(self, tasks: Container[str]) -> Iterator[Decision]:
        """The decisions of `tasks` only, built one at a time."""
        columns = [getattr(self, f) for f in _COLUMNS]
        for i, task in enumerate(self.task):
            if task in tasks:
                yield Decision(*(c[i] for c in columns))

    @classmethod
    def of(cls, decisions: Iterable[Decision]) -> DecisionBatch:
        rows = list(decisions)
        return cls(*([getattr(d, f) for d in rows] for f in _COLUMNS))


def as_batch(decisions: DecisionBatch | Iterable[Decision]) -> DecisionBatch:
    return decisions if isinstance(decisions, DecisionBatch) else DecisionBatch.of(decisions)


_COLUMNS = tuple(f.name for f in fields(Decision))
