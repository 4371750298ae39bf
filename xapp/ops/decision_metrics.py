"""Metrics of released decisions, recorded per batch: one counter update per (task, node) and per
task, and the latency and confidence histograms (per frame by nature) filled per batch with `observe_many`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from itertools import repeat
from operator import eq, is_not, itemgetter

import numpy as np

from xapp.ops.metrics import Metrics, observe_many
from xapp.vocab import Decision, DecisionBatch, as_batch


def record_decisions(metrics: Metrics, decisions: DecisionBatch | Iterable[Decision]) -> None:
    b = as_batch(decisions)
    n = len(b)
    if not n:
        return
    released_ns = b.t_decision_ns[0]
    at_once = b.t_decision_ns.count(released_ns) == n  # as the engine releases: one stamp for the batch
    decided = released_ns if at_once else np.array(b.t_decision_ns, dtype=np.int64)
    seconds = np.maximum(0.0, (decided - np.array(b.t_node_ns, dtype=np.int64)) / 1e9)
    observe_many(metrics.child(metrics.stage_latency, "indication_to_decision"), seconds)
    tasks = set(b.task)
    gflops, confidence = np.array(b.gflops), np.array(b.confidence)
    task_of = np.array(b.task) if len(tasks) > 1 else None  # usually one: a task's rows leaving at its exit
    for task in tasks:
        mine = slice(None) if task_of is None else task_of == task
        observe_many(metrics.child(metrics.decision_latency, task), seconds[mine])
        observe_many(metrics.child(metrics.decision_confidence, task), confidence[mine])
        metrics.child(metrics.decision_gflops, task).inc(float(gflops[mine].sum()))
    if task_of is None:
        (task,) = tasks
        for node, count in Counter(b.node_id).items():
            metrics.child(metrics.node_decisions, task, node).inc(count)
    else:
        for (task, node), count in Counter(zip(b.task, b.node_id)).items():
            metrics.child(metrics.node_decisions, task, node).inc(count)
    # Each node's latest decision: in ascending time, a dict keeps the last (largest) per node.
    if at_once:
        latest = dict.fromkeys(b.node_id, released_ns)
    else:
        by_time = sorted(zip(b.t_decision_ns, b.node_id))
        latest = dict(zip(map(itemgetter(1), by_time), map(itemgetter(0), by_time)))
    for node, t_decision in latest.items():
        metrics.child(metrics.node_last_decision, node).set(t_decision / 1e9)
    if b.truth.count(None) == len(b):
        return
    scored = Counter(zip(b.task, map(eq, b.label, b.truth), map(is_not, b.truth, repeat(None))))
    for (task, right, has_truth), n in scored.items():
        if has_truth:
            metrics.child(metrics.decisions_scored, task, "correct" if right else "wrong").inc(n)
