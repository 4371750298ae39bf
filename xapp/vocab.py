"""The serving path's shared words, its ground floor: where a frame comes from (`NodeEndpoint`),
the validated frame on its way to the engine (`Request`), what the engine hands to the publishers
(`Decision`, or a `DecisionBatch` of them as columns), and how a link is secured (`TlsFiles`,
`ZmqCurve`). config, e2, engine, publish and ops speak these to each other; this module imports
nothing of the package."""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np


@dataclass(frozen=True, slots=True)
class NodeEndpoint:
    """An E2 node the xApp subscribes to: its id and gRPC address "host:port", as in the descriptor."""

    id: str
    address: str


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files of one TLS link: the CA that signs the peer, and our own certificate and key (mTLS)."""

    ca: Path
    cert: Path | None = None
    key: Path | None = None
    server_name: str | None = None  # expected in the peer's certificate when not the address's host


@dataclass(frozen=True, slots=True)
class ZmqCurve:
    """CURVE security of the ZMQ decision feed."""

    secret_key: Path  # zmq.auth certificate file holding the PUB socket's key pair
    authorized_keys: Path | None = None  # directory of subscribers' public certificates; None: any


@dataclass(frozen=True, slots=True)
class Request:
    """One validated I/Q frame on its way through the batcher to the engine."""

    node_id: str
    task: str
    frame: np.ndarray  # complex64 [A, S], read-only view of the payload bytes
    seq: int
    cell_id: str
    t_node_ns: int  # node timestamp (time.time_ns() at the node)
    t_arrival: float  # time.monotonic() at arrival
    deadline: float  # t_arrival + deadline_ms / 1000
    label: str | None = None  # ground truth, only from simulated nodes



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
