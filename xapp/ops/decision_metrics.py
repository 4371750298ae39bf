"""Metrics of released decisions, recorded per batch: one counter update per (task, node) and per
task, and the latency histograms (per frame by nature) filled per batch with `observe_many`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import numpy as np

from xapp.ops.metrics import Metrics, observe_many
from xapp.vocab import Decision, DecisionBatch, as_batch


def record_decisions(metrics: Metrics, decisions: DecisionBatch | Iterable[Decision]) -> None:
    b = as_batch(decisions)
    if not len(b):
        return
    seconds = np.maximum(0.0, (np.array(b.t_decision_ns, dtype=np.int64) - np.array(b.t_node_ns, dtype=np.int64)) / 1e9)
    observe_many(metrics.stage_latency.labels("indication_to_decision"), seconds)
    tasks = np.array(b.task)
    gflops = np.array(b.gflops)
    for task in set(b.task):
        mine = tasks == task
        observe_many(metrics.decision_latency.labels(task), seconds[mine])
        metrics.decision_gflops.labels(task).inc(float(gflops[mine].sum()))
    last: dict[str, int] = {}
    for node, t_decision in zip(b.node_id, b.t_decision_ns):
        if t_decision > last.get(node, 0):
            last[node] = t_decision
    for (task, node), n in Counter(zip(b.task, b.node_id)).items():
        metrics.node_decisions.labels(task, node).inc(n)
    for node, t_decision in last.items():
        metrics.node_last_decision.labels(node).set(t_decision / 1e9)
    scored = Counter((task, "correct" if label == truth else "wrong")
                     for task, label, truth in zip(b.task, b.label, b.truth) if truth is not None)
    for (task, outcome), n in scored.items():
        metrics.decisions_scored.labels(task, outcome).inc(n)
