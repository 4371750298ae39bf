"""Prometheus metrics of one xApp instance, in a registry of its own (several instances may share
a process in tests). Every part that counts something receives this object explicitly."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


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
        self.controls_sent = Counter("xapp_e2_controls", "E2 Control requests sent", ["node", "kind", "outcome"], registry=r)
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

    def render(self) -> bytes:
        return generate_latest(self.registry)
