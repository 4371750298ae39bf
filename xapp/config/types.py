"""What a loaded descriptor is: frozen dataclasses, one per block, and the error that lists every
problem of an unusable one. Defaults live in the schema (descriptor.schema.json), not here; the
loader fills them in before it builds these."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from xapp.vocab import NodeEndpoint, TlsFiles, ZmqCurve


class DescriptorError(Exception):
    """An unusable descriptor. `problems` holds one "dotted.path: what is wrong" line per problem."""

    def __init__(self, path: str | os.PathLike[str], problems: list[str]) -> None:
        self.path = str(path)
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        count = f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"
        super().__init__(f"invalid descriptor {self.path} ({count}):\n{lines}")


@dataclass(frozen=True, slots=True)
class XappIdentity:
    name: str
    version: str
    app_id: str
    instance_id: str


@dataclass(frozen=True, slots=True)
class EncoderSpec:
    checkpoint: Path  # resolved; the packaged encoder when the descriptor says null
    device: str
    depth: int  # from the checkpoint's safetensors metadata, else DEFAULT_DEPTH
    precision: str  # fp32 | int8 | bf16 (xapp.engine.precision) | auto (xapp.engine.choose)
    runtime: str = "torch"  # torch | onnxruntime: what runs the blocks | auto
    min_agreement: float = 0.99  # what `auto` asks of a setting's decisions against torch fp32


@dataclass(frozen=True, slots=True)
class ServiceModel:
    name: str
    version: str


@dataclass(frozen=True, slots=True)
class Reconnect:
    initial_backoff_ms: int
    max_backoff_ms: int
    jitter: float


@dataclass(frozen=True, slots=True)
class FrameChecks:
    max_clock_skew_s: float
    replay_window: int


@dataclass(frozen=True, slots=True)
class E2Spec:
    service_model: ServiceModel
    nodes: tuple[NodeEndpoint, ...]
    reconnect: Reconnect
    max_frame_bytes: int
    max_down_s: float
    frame_checks: FrameChecks
    tls: TlsFiles | None  # None: plaintext gRPC


@dataclass(frozen=True, slots=True)
class ExitHead:
    exit: int
    head: Path | None
    sha256: str | None


@dataclass(frozen=True, slots=True)
class PolicySpec:
    kind: str  # fixed | entropy | confidence | patience
    threshold: float | None = None  # entropy: stop if normalised entropy <= t; confidence: if max prob >= t
    patience: int | None = None  # patience: stop once this many consecutive exits agree
    exits: tuple[ExitHead, ...] = ()  # earlier exits a dynamic policy may stop at, ascending


@dataclass(frozen=True, slots=True)
class ControlSpec:
    beam_switch: bool
    interference_mitigation: bool
    min_confidence: float = 0.0  # act only on decisions whose top softmax probability is at least this


@dataclass(frozen=True, slots=True)
class TaskSettings:
    """One task's block of the descriptor: how it is served (the task itself is xapp.data's TaskSpec)."""

    name: str
    enabled: bool
    exit: int
    head: Path | None  # its own file, else the heads manifest's at this exit; None: a disabled task with neither
    sha256: str | None
    policy: PolicySpec
    control: ControlSpec
    windows: int = 1  # each frame is this many of the heads' frames in a row, decided once over all of them


@dataclass(frozen=True, slots=True)
class Batching:
    max_batch: int
    max_wait_ms: float
    queue_limit: int
    deadline_ms: float


@dataclass(frozen=True, slots=True)
class Publish:
    zmq_endpoint: str
    redis_url: str
    stream_maxlen: int
    redis_password: str | None = field(repr=False)  # None: no AUTH
    redis_buffer: int
    redis_tls: TlsFiles | None
    zmq_curve: ZmqCurve | None
    wire: str = "decision"  # decision | batch (xapp.publish.codec)


@dataclass(frozen=True, slots=True)
class Ops:
    http_port: int
    log_level: str
    bind: str
    max_connections: int
    request_timeout_s: float


@dataclass(frozen=True, slots=True)
class Descriptor:
    path: Path
    root: Path  # what relative paths resolved against
    source_sha256: str  # of the file's bytes; the watcher compares against it
    xapp: XappIdentity
    encoder: EncoderSpec
    e2: E2Spec
    tasks: Mapping[str, TaskSettings]  # read-only, in descriptor order, disabled tasks included
    batching: Batching
    publish: Publish
    ops: Ops
    heads_manifest: Path | None = None  # heads.manifest, resolved

    @property
    def enabled_tasks(self) -> dict[str, TaskSettings]:
        return {name: t for name, t in self.tasks.items() if t.enabled}
