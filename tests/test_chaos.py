"""The fault campaign sized for CI: every phase runs against the real xApp (tiny model), real gRPC,
ZMQ and Redis, and the campaign's own books must close: no crash, no silent loss."""

from __future__ import annotations

import asyncio

import pytest
from conftest import write_descriptor

from xapp.chaos.campaign import Campaign, ChaosPlan
from xapp.e2.faults import MALFORMED
from xapp.vocab import NodeEndpoint

pytestmark = pytest.mark.e2e  # the slow end-to-end tier: real processes, sockets, the whole xApp

PLAN = ChaosPlan(nodes=2, rate_hz=40.0, flood_rounds=2, wire_rounds=1, churn_cycles=1, max_down_s=0.5,
                 outage_s=1.5, redis_outage_s=1.5, redis_buffer=16, soak_s=3.0, pool=8, threads=1)


@pytest.mark.timeout(240)
def test_campaign_keeps_every_guarantee(tiny_model, tmp_path):
    model_dir, _ = tiny_model
    source = write_descriptor(model_dir, tmp_path / "descriptors" / "tiny.yaml", [NodeEndpoint("placeholder", "127.0.0.1:1")],
                              "tcp://127.0.0.1:1", "redis://127.0.0.1:1/0", 1)
    report = asyncio.run(Campaign(source, PLAN, progress=print).run())
    print(report.table())
    assert report.failures == []
    f = report.figures
    assert f["flood_kinds"] >= 15 and f["flood_malformed"] == (len(MALFORMED) + 1) * PLAN.flood_rounds * PLAN.nodes
    assert f["flood_good"] > 0 and f["flood_answered"] == f["flood_good"] and f["flood_silent"] == 0
    assert f["wire_faults"] == 3 * PLAN.nodes and f["churn_faults"] == 4 * PLAN.nodes
    assert f["redis_dropped"] > 0 and f["redis_silent"] == 0
    assert f["reload_refused"] == f["reload_bad"] >= 7
    assert f["crashes"] == 0 and f["tracebacks"] == 0
