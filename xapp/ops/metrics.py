"""Prometheus metrics of one xApp instance, in a registry of its own (several instances may share
a process in tests). Every part that counts something receives this object explicitly."""

from __future__ import annotations

import collections
import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

SMALL_BATCH = 16  # observe_many bins fewer amounts without numpy
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
# The heads are calibrated (xapp/train/calibration.py): the share of decisions above a bound is the
# share an operator can act on at that bound; a fall in it without a change of descriptor says the
# frames have changed (a steady share does not say they have not: README, "Acting only on confident
# decisions").
CONFIDENCE_BUCKETS = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99)


def observe_many(histogram: Histogram, amounts: np.ndarray) -> None:
    """What `histogram.observe(a)` for every a in `amounts` records (one labelled child, no exemplars),
    as one bucket update per bucket hit: the serving path observes per frame, thousands a second.
    Reads prometheus_client's per-child bucket values (`_upper_bounds`, `_buckets`, `_sum`), which
    `observe` itself updates the same way."""
    histogram._raise_if_not_observable()
    bounds = histogram._upper_bounds
    # observe() counts an amount in the first bucket whose upper bound is >= it.
    if len(amounts) < SMALL_BATCH:  # numpy's fixed cost is more than a bisect per amount
        values = amounts.tolist()
        hits = collections.Counter(bisect_left(bounds, a) for a in values).items()
        total = math.fsum(values)
    else:
        # The bounds as an array, kept on the child: searchsorted would convert the list on every call.
        if (edges := getattr(histogram, "_bounds_array", None)) is None:
            edges = histogram._bounds_array = np.asarray(bounds)
        counts = np.bincount(np.searchsorted(edges, amounts, side="left"), minlength=len(bounds))
        hits = [(bucket, count) for bucket, count in enumerate(counts.tolist()) if count]
        total = float(amounts.sum())
    histogram._sum.inc(total)
    for bucket, count in hits:
        histogram._buckets[bucket].inc(count)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.frames_in = Counter("xapp_frames_in", "Indications received", ["node", "task"], registry=r)
        self.frames_rejected = Counter(
            "xapp_frames_rejected", "Indications rejected by validation", ["node", "reason"], registry=r
        )
        self.frames_shed = Counter("xapp_frames_shed", "Frames dropped unserved", ["task", "reason"], registry=r)
        self.decisions = Counter("xapp_decisions", "Decisions published", ["task", "exit"], registry=r)
        self.reconnects = Counter("xapp_e2_reconnects", "Resubscriptions after a stream ended", ["node"], registry=r)
        self.subscriptions_up = Gauge("xapp_e2_subscriptions_up", "Subscriptions acknowledged and streaming", registry=r)
        self.node_up = Gauge("xapp_e2_node_up", "1 while the node's subscription is acknowledged and streaming", ["node"], registry=r)
        self.resubscribes = Counter(
            "xapp_e2_resubscribes", "Subscription attempts that ended, by what ended them", ["node", "cause"], registry=r
        )
        self.http_refused = Counter(
            "xapp_ops_http_refused", "Ops HTTP requests or connections refused (bad_request, evicted, expired)",
            ["reason"], registry=r,
        )
        self.seq_gaps = Counter("xapp_e2_seq_gaps", "Sequence numbers skipped by a node's stream", ["node"], registry=r)
        self.controls_sent = Counter("xapp_e2_controls", "E2 Control requests sent", ["node", "kind", "outcome"], registry=r)
        self.controls_withheld = Counter(
            "xapp_e2_controls_withheld", "Decisions of a controlling task not acted on: under its control.min_confidence",
            ["task"], registry=r,
        )
        self.queue_depth = Gauge("xapp_batch_queue_depth", "Frames waiting for a batch", registry=r)
        self.batch_size = Histogram(
            "xapp_batch_size", "Frames per engine batch", buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r
        )
        self.exit_depth = Histogram(
            "xapp_batch_exit_depth", "Deepest encoder block run per batch", buckets=tuple(range(1, 17)), registry=r
        )
        self.stage_latency = Histogram(
            "xapp_stage_latency_seconds", "Latency per stage", ["stage"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.descriptor_reloads = Counter(
            "xapp_descriptor_reloads", "Descriptor reload attempts", ["outcome"], registry=r
        )
        self.decisions_scored = Counter(
            "xapp_decisions_scored", "Decisions checked against simulator ground truth", ["task", "outcome"], registry=r
        )
        self.published = Counter("xapp_published", "Decisions written to a sink", ["sink"], registry=r)
        self.publish_dropped = Counter(
            "xapp_publish_dropped", "Decisions a sink could not take", ["sink", "reason"], registry=r
        )
        # What an operator watches per task and node: the Grafana dashboard, the alerts, `xapp top`.
        self.node_decisions = Counter("xapp_node_decisions", "Decisions published, per E2 node", ["task", "node"], registry=r)
        self.decision_gflops = Counter(
            "xapp_decision_gflops", "Encoder and head GFLOPs spent on the published decisions", ["task"], registry=r
        )
        self.decision_latency = Histogram(
            "xapp_decision_latency_seconds", "Indication to decision, per task", ["task"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.decision_confidence = Histogram(
            "xapp_decision_confidence", "Confidence of the published decisions (the head's top softmax probability), "
            "per task", ["task"], buckets=CONFIDENCE_BUCKETS, registry=r,
        )
        self.task_exit = Gauge("xapp_task_exit", "Encoder block each enabled task is served at", ["task"], registry=r)
        self.deadline = Gauge("xapp_deadline_seconds", "The descriptor's batching.deadline_ms, in seconds", registry=r)
        self.engine = Gauge(
            "xapp_engine_setting", "1 for the runtime and precision the trunk is served at, and how they were chosen "
            "(configured, only candidate, measured, cached)", ["runtime", "precision", "how"], registry=r,
        )
        self.node_last_decision = Gauge(
            "xapp_node_last_decision_timestamp_seconds", "Unix time of the last decision on a node's frames", ["node"], registry=r
        )
        self._served_nodes: set[str] = set()
        self._children: dict[tuple[MetricWrapperBase, tuple[str, ...]], MetricWrapperBase] = {}

    def child(self, metric: MetricWrapperBase, *values: str) -> MetricWrapperBase:
        """`metric.labels(*values)`, remembered: the serving path updates the same few series per
        batch, and `labels()` validates and locks on every call (about 1.5 us, as much as the update).
        A series removed by `serving` is forgotten here too."""
        key = (metric, values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def _forget(self, metric: MetricWrapperBase) -> None:
        for key in list(self._children):  # one atomic copy: the engine thread may add a series meanwhile
            if key[0] is metric:
                self._children.pop(key, None)

    def serving(self, exits: Mapping[str, int], deadline_ms: float, nodes: Iterable[str]) -> None:
        """Record the configuration now served: each enabled task's exit, the deadline, and the
        nodes (a node no longer served stops reporting, so it cannot look silent)."""
        self.task_exit.clear()
        self._forget(self.node_last_decision)
        for task, exit_ in exits.items():
            self.task_exit.labels(task).set(exit_)
        self.deadline.set(deadline_ms / 1000)
        nodes = set(nodes)
        for gone in self._served_nodes - nodes:
            try:
                self.node_last_decision.remove(gone)
            except KeyError:
                pass  # no decision on it yet
        self._served_nodes = nodes

    def engine_setting(self, runtime: str, precision: str, how: str) -> None:
        self.engine.clear()
        self.engine.labels(runtime, precision, how).set(1)

    def total(self, name: str, **labels: str) -> float:
        """Sum of a sample's values over every series whose labels include `labels`."""
        return sum(s.value for family in self.registry.collect() for s in family.samples
                   if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))

    def by_label(self, name: str, label: str) -> dict[str, float]:
        """Sum of a sample's values per value of `label`, for the values with a non-zero sum."""
        sums: dict[str, float] = collections.defaultdict(float)
        for family in self.registry.collect():
            for sample in family.samples:
                if sample.name == name and label in sample.labels:
                    sums[sample.labels[label]] += sample.value
        return {value: total for value, total in sums.items() if total}

    def render(self) -> bytes:
        return generate_latest(self.registry)
