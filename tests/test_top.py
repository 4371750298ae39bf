"""`xapp top` against a real running xApp, and its histogram quantile against Prometheus's rule."""

from __future__ import annotations

import asyncio
import re

import pytest
from polling import until
from test_app_e2e import running

from xapp.cli import main
from xapp.ops.top import quantile

pytestmark = pytest.mark.e2e  # the slow end-to-end tier: real processes, sockets, the whole xApp


def test_quantile_interpolates_within_the_bucket_as_prometheus_does():
    buckets = {0.01: 10.0, 0.02: 30.0, 0.05: 40.0, float("inf"): 40.0}
    assert quantile(0.5, buckets) == pytest.approx(0.015)  # rank 20: halfway through (0.01, 0.02]
    assert quantile(0.25, buckets) == pytest.approx(0.01)
    assert quantile(0.99, buckets) == pytest.approx(0.02 + 0.03 * (39.6 - 30) / 10)
    assert quantile(0.5, {0.01: 0.0, float("inf"): 0.0}) is None


def test_top_shows_tasks_and_nodes_of_a_running_xapp(tiny_model, redis_url, tmp_path, capsys):
    async def scenario():
        async with running(tiny_model, redis_url, tmp_path) as s:
            await until(lambda: {d.node_id for _, d in s.decisions} >= {n.node_id for n in s.nodes}, "decisions from every node")
            await s.nodes[3].stop()
            await until(lambda: not s.app.subscribers[s.nodes[3].node_id].up, "node 3 down")
            url = f"http://127.0.0.1:{s.app.descriptor.ops.http_port}"
            assert await asyncio.to_thread(main, ["top", "--url", url, "--interval", "0.5", "--count", "2"]) == 0
            return s.nodes

    nodes = asyncio.run(asyncio.wait_for(scenario(), 120))
    frames = capsys.readouterr().out.split("\n\nxapp top")
    assert len(frames) == 2
    last = frames[-1]
    for task, exit_ in (("modulation", 1), ("beam", 2)):
        m = re.search(rf"^{task}\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)\s+(\d+)\s+([0-9.]+)\s+(\d+)%$", last, re.M)
        assert m, last
        rate, p50, p99, shown_exit, shed, sure = float(m[1]), float(m[2]), float(m[3]), int(m[4]), float(m[5]), int(m[6])
        assert rate > 0 and 0 < p50 <= p99 and shown_exit == exit_ and shed == 0 and 0 <= sure <= 100
    for n in nodes[:3]:
        assert re.search(rf"^{n.node_id}\s+up\s", last, re.M), last
    assert re.search(rf"^{nodes[3].node_id}\s+DOWN\s", last, re.M), last
    assert "; trunk on torch fp32 (configured)" in last  # the tiny model's descriptor pins it


def test_sure_share_is_the_windows_decisions_above_the_bound():
    from xapp.ops.top import Scrape, sure_shares

    def scrape(at: float, count: float, unsure: float) -> Scrape:
        return Scrape(at, {("xapp_decision_confidence_bucket", (("le", "0.8"), ("task", "beam"))): unsure,
                           ("xapp_decision_confidence_bucket", (("le", "0.9"), ("task", "beam"))): count,
                           ("xapp_decision_confidence_count", (("task", "beam"),)): count}, {})

    assert sure_shares(scrape(2.0, 150, 40), scrape(1.0, 50, 20)) == {"beam": 0.8}  # 20 of 100 new ones unsure
    assert sure_shares(scrape(2.0, 50, 20), scrape(1.0, 50, 20)) == {}  # no decision in the window


def test_top_names_an_unreachable_xapp(capsys):
    assert main(["top", "--url", "http://127.0.0.1:1", "--count", "1"]) == 2
    assert "http://127.0.0.1:1/metrics" in capsys.readouterr().err
