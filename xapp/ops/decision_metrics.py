"""Metrics of released decisions, recorded per batch: one counter update per (task, node) and per
task, one histogram observation per decision (latency is per frame by nature)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from xapp.ops.metrics import Metrics
from xapp.vocab import Decision, DecisionBatch, as_batch


def record_decisions(metrics: Metrics, decisions: DecisionBatch | Iterable[Decision]) -> None:
    b = as_batch(decisions)
    if not len(b):
        return
    pipeline = metrics.stage_latency.labels("indication_to_decision")
    per_task = {task: metrics.decision_latency.labels(task) for task in set(b.task)}
    gflops: dict[str, float] = defaultdict(float)
    last: dict[str, int] = {}
    for task, node, g, t_node, t_decision in zip(b.task, b.node_id, b.gflops, b.t_node_ns, b.t_decision_ns):
        seconds = max(0.0, (t_decision - t_node) / 1e9)
        pipeline.observe(seconds)
        per_task[task].observe(seconds)
        gflops[task] += g
        last[node] = max(last.get(node, 0), t_decision)
    for (task, node), n in Counter(zip(b.task, b.node_id)).items():
        metrics.node_decisions.labels(task, node).inc(n)
    for task, g in gflops.items():
        metrics.decision_gflops.labels(task).inc(g)
    for node, t_decision in last.items():
        metrics.node_last_decision.labels(node).set(t_decision / 1e9)
    scored = Counter((task, "correct" if label == truth else "wrong")
                     for task, label, truth in zip(b.task, b.label, b.truth) if truth is not None)
    for (task, outcome), n in scored.items():
        metrics.decisions_scored.labels(task, outcome).inc(n)
