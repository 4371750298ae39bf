"""Every metric the Grafana dashboard and the alerts query exists on a real running xApp's /metrics,
with the type and the labels the queries use."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.request

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from polling import until
from test_app_e2e import running
from test_helm import CHART, OBSERVABILITY, render

pytestmark = pytest.mark.e2e  # the slow end-to-end tier: real processes, sockets, the whole xApp

# Added by Prometheus when it scrapes a pod (namespace, pod) or by histograms (le), not by the xApp.
SCRAPE_LABELS = {"namespace", "pod", "le"}
# The scenario below cannot make a sink drop a decision; this family is checked for presence and type only.
NOT_TRIGGERED = {"xapp_publish_dropped"}


def queries() -> list[str]:
    dashboard = json.loads((CHART / "dashboards" / "early-exit-xapp.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    rule = render(OBSERVABILITY)[("PrometheusRule", "ee-early-exit-xapp")]
    return exprs + [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]


def family_and_type(series: str) -> tuple[str, str]:
    for suffix, kind in (("_bucket", "histogram"), ("_sum", "histogram"), ("_count", "histogram"), ("_total", "counter")):
        if series.endswith(suffix):
            return series.removesuffix(suffix), kind
    return series, "gauge"


def used_labels(exprs: list[str]) -> dict[str, set[str]]:
    """Series name -> the labels the queries select or group it by."""
    used: dict[str, set[str]] = {}
    for expr in exprs:
        for m in re.finditer(r"(xapp_\w+)(\{[^}]*\})?", expr):
            used.setdefault(m[1], set()).update(re.findall(r"(\w+)\s*=~?", m[2] or ""))
        for m in re.finditer(r"by \(([^)]*)\) \(\s*(?:\w+\()?(xapp_\w+)", expr):
            used[m[2]].update(x.strip() for x in m[1].split(","))
    return {name: labels - SCRAPE_LABELS for name, labels in used.items()}


def test_every_queried_metric_exists_with_its_type_and_labels(tiny_model, redis_url, tmp_path):
    async def scenario():
        async with running(tiny_model, redis_url, tmp_path) as s:
            await until(lambda: {d.node_id for _, d in s.decisions} >= {n.node_id for n in s.nodes}, "decisions from every node")
            s.nodes[2].inject(["nan"])  # a reject
            await until(lambda: s.metric("xapp_frames_rejected_total", node=s.nodes[2].node_id, reason="non_finite") == 1, "reject")
            await s.nodes[1].stop()  # a resubscribe
            await until(lambda: not s.app.subscribers[s.nodes[1].node_id].up, "subscription down")
            await s.nodes[1].start()
            await until(lambda: s.metric("xapp_e2_reconnects_total", node=s.nodes[1].node_id) >= 1, "resubscribe")
            original = s.path.read_text()
            s.path.write_text(original.replace("exit: 1", "exit: 99", 1))  # a rejected reload
            await until(lambda: s.metric("xapp_descriptor_reloads_total", outcome="rejected") >= 1, "rejected reload")
            doc = yaml.safe_load(original)
            doc["batching"].update(deadline_ms=0.01, max_wait_ms=0.005)  # every frame misses it: sheds
            s.path.write_text(yaml.safe_dump(doc, sort_keys=False))
            await until(lambda: s.metric("xapp_descriptor_reloads_total", outcome="applied") >= 1, "applied reload")
            await until(lambda: sum(s.metric("xapp_frames_shed_total", task=t, reason="deadline") for t in ("modulation", "beam")) > 0,
                        "sheds")
            url = f"http://127.0.0.1:{s.app.descriptor.ops.http_port}/metrics"
            return await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read().decode())

    text = asyncio.run(asyncio.wait_for(scenario(), 120))
    scraped = {f.name: f for f in text_string_to_metric_families(text)}
    wanted = used_labels(queries())
    assert len(wanted) >= 15, sorted(wanted)
    for series, labels in sorted(wanted.items()):
        family, kind = family_and_type(series)
        assert family in scraped, f"{series}: not on /metrics"
        assert scraped[family].type == kind, f"{family}: {scraped[family].type}, the queries treat it as a {kind}"
        samples = [x for x in scraped[family].samples if x.name == series]
        if family in NOT_TRIGGERED:
            continue
        assert samples, f"{series}: no samples after the scenario"
        assert all(labels <= set(x.labels) for x in samples), f"{series}: queried by {labels}, has {set(samples[0].labels)}"
