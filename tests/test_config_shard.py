"""Replica sharding of E2 nodes: each node to exactly one replica, the same in every process."""

from __future__ import annotations

import subprocess
import sys

import pytest

from xapp.config import Shard, ShardError, select_nodes, shard_from_env, shard_of
from xapp.vocab import NodeEndpoint

NODES = [NodeEndpoint(f"e2node-{i}", f"127.0.0.1:{50051 + i}") for i in range(40)]


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5])
def test_every_node_is_served_by_exactly_one_shard(count: int) -> None:
    picked = [n.id for index in range(count) for n in select_nodes(NODES, index, count)]
    assert sorted(picked) == sorted(n.id for n in NODES)
    if count > 1:  # 40 nodes: every replica gets a share
        assert all(select_nodes(NODES, index, count) for index in range(count))


def test_assignment_is_pinned_and_independent_of_the_process() -> None:
    # Golden values: a change of the hash would silently reshuffle running deployments.
    ids = [f"e2node-{i}" for i in range(6)]
    assert [shard_of(i, 2) for i in ids] == [0, 0, 1, 0, 1, 0]
    assert [shard_of(i, 3) for i in ids] == [0, 2, 2, 0, 1, 0]
    code = "from xapp.config import shard_of; print([shard_of(f'e2node-{i}', 3) for i in range(6)])"
    for seed in ("1", "2"):
        out = subprocess.run([sys.executable, "-c", code], env={"PYTHONHASHSEED": seed}, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "[0, 2, 2, 0, 1, 0]"


def test_adding_a_replica_only_moves_nodes_to_it() -> None:
    for count in range(1, 6):
        moved = [n.id for n in NODES if shard_of(n.id, count) != shard_of(n.id, count + 1)]
        assert moved and all(shard_of(i, count + 1) == count for i in moved)


def test_shard_from_env() -> None:
    assert shard_from_env({}) == Shard(0, 1)
    assert shard_from_env({"HOSTNAME": "early-exit-xapp-2", "XAPP_SHARD_COUNT": "3"}) == Shard(2, 3)
    assert shard_from_env({"HOSTNAME": "laptop-7"}) == Shard(0, 1)  # one replica: the suffix means nothing
    assert shard_from_env({"HOSTNAME": "x-2", "XAPP_SHARD_COUNT": "3", "XAPP_SHARD_INDEX": "1"}) == Shard(1, 3)
    with pytest.raises(ShardError, match="shard 3/3"):
        shard_from_env({"HOSTNAME": "early-exit-xapp-3", "XAPP_SHARD_COUNT": "3"})  # scaled with kubectl, not helm
    with pytest.raises(ShardError, match="integers"):
        shard_from_env({"XAPP_SHARD_COUNT": "two"})
    with pytest.raises(ShardError):
        select_nodes(NODES, 0, 0)
