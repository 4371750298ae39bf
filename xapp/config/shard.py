"""Scale-out: replicas split the E2 nodes between them by stable hashing of the node id. Nothing
coordinates replicas; each one computes the same assignment from (node id, shard count).

Rendezvous (highest-random-weight) hashing over sha256: every node lands on exactly one shard, the
result never depends on the process (unlike hash()), and going from n to n+1 replicas moves only
the nodes the new replica takes over."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from xapp.vocab import NodeEndpoint

SHARD_COUNT_ENV = "XAPP_SHARD_COUNT"  # the chart sets it to the StatefulSet's replica count
SHARD_INDEX_ENV = "XAPP_SHARD_INDEX"  # optional; otherwise the pod ordinal from HOSTNAME
_ORDINAL = re.compile(r"-(\d+)$")

N = TypeVar("N", bound=NodeEndpoint)


class ShardError(ValueError):
    """Shard index/count that cannot describe a replica."""


@dataclass(frozen=True, slots=True)
class Shard:
    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ShardError(f"shard {self.index}/{self.count}: need count >= 1 and 0 <= index < count")


def _weight(node_id: str, shard: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{shard}\x00{node_id}".encode()).digest()[:8], "big")


def shard_of(node_id: str, shard_count: int) -> int:
    """The shard (0..shard_count-1) that serves `node_id`."""
    if shard_count < 1:
        raise ShardError(f"shard count {shard_count}: need at least 1")
    return max(range(shard_count), key=lambda s: _weight(node_id, s))


def select_nodes(nodes: Iterable[N], shard_index: int, shard_count: int) -> tuple[N, ...]:
    """The nodes this replica subscribes to, in their original order."""
    Shard(shard_index, shard_count)
    return tuple(n for n in nodes if shard_of(n.id, shard_count) == shard_index)


def shard_from_env(env: Mapping[str, str] = os.environ) -> Shard:
    """count from XAPP_SHARD_COUNT (default 1); index from XAPP_SHARD_INDEX, else the StatefulSet
    pod ordinal at the end of HOSTNAME (early-exit-xapp-2 -> 2), else 0."""
    try:
        count = int(env.get(SHARD_COUNT_ENV) or 1)
        if env.get(SHARD_INDEX_ENV):
            index = int(env[SHARD_INDEX_ENV])
        else:
            match = _ORDINAL.search(env.get("HOSTNAME", ""))
            index = int(match.group(1)) if match and count > 1 else 0
    except ValueError as exc:
        raise ShardError(f"{SHARD_COUNT_ENV}/{SHARD_INDEX_ENV} must be integers: {exc}") from exc
    return Shard(index, count)
