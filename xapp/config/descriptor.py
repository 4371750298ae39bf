"""The xApp descriptor: a YAML file validated by `descriptor.schema.json` plus checks the schema
cannot express (exit within the encoder's depth, policy thresholds, unique node ids) and, on every
head, the very check the xApp runs when it loads it (sha256, task, exit, encoder width, classes).
Every problem is collected, each with its dotted path, so an operator fixes a descriptor in one round.

Heads: `heads.manifest` (pinned by `heads.sha256`) names the manifest once; each task then sets only
its `exit` (and policy) and gets the manifest's head at that exit. A task's own `head` (and
`sha256`) overrides it for custom heads.

Path rule: a relative path in a descriptor resolves against the parent of the descriptor's
directory, taken without resolving symlinks (descriptors/default.yaml -> the repo root;
/opt/ric/config/descriptor.yaml mounted from a ConfigMap -> /opt/ric, where the image keeps heads/).
String values may reference environment variables as ${VAR} or ${VAR:-default}.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import jsonschema
import yaml

from xapp.config.manifest import ManifestError, head_at, read_manifest
from xapp.vocab import NodeEndpoint, TlsFiles, ZmqCurve

if TYPE_CHECKING:
    from xapp.model.config import EncoderConfig

SCHEMA_PATH = Path(__file__).with_name("descriptor.schema.json")
PACKAGED_ENCODER = Path(__file__).resolve().parent.parent / "assets" / "encoder.safetensors"
DEFAULT_DEPTH = 8  # used when the encoder checkpoint is absent or carries no config metadata
CONFIG_FILE_ENV = "CONFIG_FILE"  # O-RAN SC convention: the platform points the xApp at its config
DYNAMIC_POLICIES = ("entropy", "confidence", "patience")
CONTROL_TASKS = {"beam_switch": "beam", "interference_mitigation": "interference"}

_SHA256 = re.compile(r"[0-9a-f]{64}")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


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
    precision: str = "fp32"  # fp32 | int8 | bf16 (xapp.engine.precision)


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
    max_clock_skew_s: float = 30.0
    replay_window: int = 4096


@dataclass(frozen=True, slots=True)
class E2Spec:
    service_model: ServiceModel
    nodes: tuple[NodeEndpoint, ...]
    reconnect: Reconnect
    max_frame_bytes: int
    max_down_s: float = 30.0
    frame_checks: FrameChecks = FrameChecks()
    tls: TlsFiles | None = None  # None: plaintext gRPC


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
    beam_switch: bool = False
    interference_mitigation: bool = False


@dataclass(frozen=True, slots=True)
class TaskSpec:
    name: str
    enabled: bool
    exit: int
    head: Path | None  # its own file, else the heads manifest's at this exit; None: a disabled task with neither
    sha256: str | None
    policy: PolicySpec
    control: ControlSpec


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
    redis_password: str | None = field(default=None, repr=False)
    redis_buffer: int = 10000
    redis_tls: TlsFiles | None = None
    zmq_curve: ZmqCurve | None = None


@dataclass(frozen=True, slots=True)
class Ops:
    http_port: int
    log_level: str
    bind: str = "127.0.0.1"
    max_connections: int = 256
    request_timeout_s: float = 5.0


@dataclass(frozen=True, slots=True)
class Descriptor:
    path: Path
    root: Path  # what relative paths resolved against
    source_sha256: str  # of the file's bytes; the watcher compares against it
    xapp: XappIdentity
    encoder: EncoderSpec
    e2: E2Spec
    tasks: Mapping[str, TaskSpec]  # read-only, in descriptor order, disabled tasks included
    batching: Batching
    publish: Publish
    ops: Ops
    heads_manifest: Path | None = None  # heads.manifest, resolved

    @property
    def enabled_tasks(self) -> dict[str, TaskSpec]:
        return {name: t for name, t in self.tasks.items() if t.enabled}


def descriptor_path_from_env(default: str | os.PathLike[str]) -> Path:
    """`CONFIG_FILE` when set (how O-RAN SC and our Helm chart point the xApp at its config), else `default`."""
    return Path(os.environ.get(CONFIG_FILE_ENV) or default)


def descriptor_root(path: str | os.PathLike[str]) -> Path:
    # abspath, not resolve(): a ConfigMap mount is a chain of symlinks into a timestamped directory.
    return Path(os.path.abspath(path)).parent.parent


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@cache
def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


def load_descriptor(path: str | os.PathLike[str]) -> Descriptor:
    """Read, validate and resolve a descriptor; raise DescriptorError listing every problem."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DescriptorError(path, [f"(file): cannot read: {exc.strerror or exc}"]) from exc
    return parse_descriptor(raw, path)


def parse_descriptor(raw: bytes, path: Path) -> Descriptor:
    """Validate a descriptor's bytes as if read from `path` (which fixes the root of relative paths).
    An O-RAN SC config-file.json is accepted too: its `controls` section is the descriptor."""
    try:
        doc = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise DescriptorError(path, [f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}"]) from exc
    if isinstance(doc, dict) and "containers" in doc and "controls" in doc:  # O-RAN SC config-file.json
        try:
            return _parse_document(doc["controls"], path, raw)
        except DescriptorError as exc:
            raise DescriptorError(path, [f"controls.{p}".replace(".(top)", "") for p in exc.problems]) from None
    return _parse_document(doc, path, raw)


def _parse_document(doc: Any, path: Path, raw: bytes) -> Descriptor:
    if not isinstance(doc, dict):
        raise DescriptorError(path, [f"(top): expected a mapping, got {type(doc).__name__}"])
    problems: list[str] = []
    doc = _expand_env(doc, (), problems)
    unset = {p.partition(":")[0] for p in problems}  # already reported; the schema would only repeat it
    problems += [p for p in _schema_problems(doc) if p.partition(":")[0] not in unset]
    root = descriptor_root(path)
    checks = _Checks(doc, root)
    problems += checks.run()
    if problems:
        raise DescriptorError(path, problems)
    return _build(doc, path, root, hashlib.sha256(raw).hexdigest(), checks)


def _dotted(parts: tuple[Any, ...] | list[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top)"


def _expand_env(value: Any, where: tuple[Any, ...], problems: list[str]) -> Any:
    if isinstance(value, dict):
        return {k: _expand_env(v, (*where, k), problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, (*where, i), problems) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is None:
            problems.append(f"{_dotted(where)}: environment variable {name} is not set (write ${{{name}:-default}} for a fallback)")
            return ""
        return default

    return _ENV_REF.sub(substitute, value)


def _schema_problems(doc: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(load_schema())
    problems = []
    for err in sorted(validator.iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path]):
        where = list(err.absolute_path)
        if err.validator == "additionalProperties":
            known = sorted(err.schema.get("properties", {}))
            for key in sorted(set(err.instance) - set(known)):
                problems.append(f"{_dotted([*where, key])}: unknown key (expected one of: {', '.join(known)})")
        elif "propertyNames" in err.schema_path:  # the only one: task names
            problems.append(f"{_dotted([*where, err.instance])}: unknown task (known: {', '.join(err.validator_value)})")
        elif err.validator == "required":
            missing = re.match(r"'([^']+)'", err.message)
            problems.append(f"{_dotted([*where, missing.group(1) if missing else '?'])}: required")
        elif err.validator == "pattern":
            hint = err.schema.get("description", f"must match {err.validator_value}")
            problems.append(f"{_dotted(where)}: {err.instance!r} is malformed ({hint})")
        else:
            problems.append(f"{_dotted(where)}: {err.message}")
    return problems


def _dig(doc: Any, *keys: Any) -> Any:
    """doc[k1][k2]... or None where the structure is missing or of the wrong type."""
    for k in keys:
        if isinstance(k, int) and isinstance(doc, list) and k < len(doc):
            doc = doc[k]
        elif isinstance(k, str) and isinstance(doc, dict):
            doc = doc.get(k)
        else:
            return None
    return doc


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def resolve_path(root: Path, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else root / p


def encoder_checkpoint(root: Path, value: str | None) -> Path:
    return PACKAGED_ENCODER if value is None else resolve_path(root, value)


def read_encoder_config(checkpoint: Path) -> EncoderConfig:
    """The config recorded in the checkpoint's header (the weights are not read)."""
    from xapp.model.checkpoint import read_config

    return read_config(checkpoint)


class _Checks:
    """The rules the schema cannot state. Tolerates a structurally broken document (the schema
    errors already cover that) so that all problems come out in one run."""

    def __init__(self, doc: dict[str, Any], root: Path) -> None:
        self.doc = doc
        self.root = root
        self.depth = DEFAULT_DEPTH
        self.dim: int | None = None  # from the checkpoint; None when there is none to read
        self.manifest: tuple[dict[str, Any], Path] | None = None  # heads.manifest, once read and pinned
        self.foreign_manifest: str | None = None  # why its heads do not fit this encoder
        self.problems: list[str] = []

    def run(self) -> list[str]:
        self._encoder()
        self._manifest()
        self._service_model()
        self._nodes()
        self._reconnect()
        self._batching()
        self._tasks()
        self._secrets()
        return self.problems

    def _add(self, where: tuple[Any, ...], message: str) -> None:
        self.problems.append(f"{_dotted(where)}: {message}")

    def _encoder(self) -> None:
        value = _dig(self.doc, "encoder", "checkpoint")
        if value is not None and not isinstance(value, str):
            return
        checkpoint = encoder_checkpoint(self.root, value)
        if not checkpoint.is_file():
            return  # not yet trained: depth falls back to the default
        try:
            config = read_encoder_config(checkpoint)
        except Exception as exc:  # noqa: BLE001 - any failure here means "not a usable checkpoint"
            self._add(("encoder", "checkpoint"), f"{checkpoint} is not a readable safetensors encoder ({exc})")
            return
        self.depth, self.dim = config.depth, config.dim

    def _manifest(self) -> None:
        value, pin = _dig(self.doc, "heads", "manifest"), _dig(self.doc, "heads", "sha256")
        if not isinstance(value, str):
            return
        path = resolve_path(self.root, value)
        try:
            manifest = read_manifest(path)
        except ManifestError as exc:
            self._add(("heads", "manifest"), str(exc))
            return
        if isinstance(pin, str) and re.fullmatch(r"[0-9a-f]{64}", pin) and (actual := file_sha256(path)) != pin:
            self._add(("heads", "sha256"), f"{path} has sha256 {actual}, the descriptor pins {pin}")
            return
        trained_on = _dig(manifest, "encoder", "sha256")
        checkpoint = encoder_checkpoint(self.root, _dig(self.doc, "encoder", "checkpoint"))
        if self.dim is not None and isinstance(trained_on, str) and (actual := file_sha256(checkpoint)) != trained_on:
            # a problem only once a task takes a head from it (_head reports it then)
            self.foreign_manifest = (f"{path}: its heads were trained on the encoder with sha256 {trained_on}, "
                                     f"not on {checkpoint} (sha256 {actual})")
        self.manifest = (manifest, path)

    def locate(self, task: str, exit_: int, head: Any, sha256: Any) -> tuple[Path, str | None]:
        """The file (and pinned sha256) of the head serving `task` at `exit_`: its own, else the
        manifest's. Raises ManifestError when neither names one."""
        if isinstance(head, str):
            return resolve_path(self.root, head), sha256 if isinstance(sha256, str) and _SHA256.fullmatch(sha256) else None
        if self.manifest is None:
            raise ManifestError("no head file: name one here, or a heads manifest under heads.manifest")
        manifest, path = self.manifest
        entry = head_at(manifest, task, exit_, path)
        return entry["path"], entry.get("sha256")

    def _service_model(self) -> None:
        from xapp.e2.e2sm_iq import ServiceModelMismatch, check_service_model

        name, version = _dig(self.doc, "e2", "service_model", "name"), _dig(self.doc, "e2", "service_model", "version")
        if isinstance(name, str) and isinstance(version, str):
            try:
                check_service_model(name, version)
            except ServiceModelMismatch as exc:
                self._add(("e2", "service_model"), str(exc))

    def _nodes(self) -> None:
        nodes = _dig(self.doc, "e2", "nodes")
        if not isinstance(nodes, list):
            return
        seen: dict[str, int] = {}
        for i, node in enumerate(nodes):
            node_id, address = _dig(node, "id"), _dig(node, "address")
            if isinstance(node_id, str):
                if node_id in seen:
                    self._add(("e2", "nodes", i, "id"), f"{node_id!r} already used by e2.nodes[{seen[node_id]}]")
                seen.setdefault(node_id, i)
            if isinstance(address, str) and address.rpartition(":")[2].isdigit():
                port = int(address.rpartition(":")[2])
                if not 1 <= port <= 65535:
                    self._add(("e2", "nodes", i, "address"), f"port {port} is outside 1..65535")

    def _reconnect(self) -> None:
        lo, hi = _dig(self.doc, "e2", "reconnect", "initial_backoff_ms"), _dig(self.doc, "e2", "reconnect", "max_backoff_ms")
        if _is_int(lo) and _is_int(hi) and lo > hi:
            self._add(("e2", "reconnect", "max_backoff_ms"), f"{hi} is below initial_backoff_ms ({lo})")

    def _batching(self) -> None:
        b = _dig(self.doc, "batching")
        if not isinstance(b, dict):
            return
        if _is_int(b.get("queue_limit")) and _is_int(b.get("max_batch")) and b["queue_limit"] < b["max_batch"]:
            self._add(("batching", "queue_limit"), f"{b['queue_limit']} is below max_batch ({b['max_batch']})")
        if _is_number(b.get("deadline_ms")) and _is_number(b.get("max_wait_ms")) and b["deadline_ms"] <= b["max_wait_ms"]:
            self._add(
                ("batching", "deadline_ms"),
                f"{b['deadline_ms']} is not above max_wait_ms ({b['max_wait_ms']}): every waiting frame would be shed",
            )

    def _secrets(self) -> None:
        """Certificate and key files named by the TLS and CURVE blocks exist, certs come with keys."""
        for where in (("e2", "tls"), ("publish", "redis", "tls")):
            tls = _dig(self.doc, *where)
            if not isinstance(tls, dict):
                continue
            if ("cert" in tls) != ("key" in tls):
                self._add((*where, "key" if "cert" in tls else "cert"), "cert and key go together (mTLS)")
            for key in ("ca", "cert", "key"):
                self._file((*where, key), tls.get(key))
        curve = ("publish", "zmq", "curve")
        self._file((*curve, "secret_key"), _dig(self.doc, *curve, "secret_key"))
        keys = _dig(self.doc, *curve, "authorized_keys")
        if isinstance(keys, str) and not resolve_path(self.root, keys).is_dir():
            self._add((*curve, "authorized_keys"), f"{keys} is not a directory (looked for {resolve_path(self.root, keys)})")
        url = _dig(self.doc, "publish", "redis", "url")
        if _dig(self.doc, "publish", "redis", "tls") is not None and isinstance(url, str) and not url.startswith("rediss://"):
            self._add(("publish", "redis", "tls"), f"given but the url {url!r} is not rediss://")

    def _file(self, where: tuple[Any, ...], value: Any) -> None:
        if isinstance(value, str) and not resolve_path(self.root, value).is_file():
            self._add(where, f"{value} does not exist (looked for {resolve_path(self.root, value)})")

    def _tasks(self) -> None:
        tasks = _dig(self.doc, "tasks")
        if not isinstance(tasks, dict):
            return
        if tasks and not any(_dig(t, "enabled") is not False for t in tasks.values()):
            self._add(("tasks",), "no task is enabled")
        known = load_schema()["properties"]["tasks"]["propertyNames"]["enum"]
        for name, task in tasks.items():
            if not isinstance(task, dict) or name not in known:
                continue
            where = ("tasks", name)
            exit_ = task.get("exit")
            self._exit((*where, "exit"), exit_)
            enabled = task.get("enabled", True) is not False
            if enabled:
                self._head(where, name, exit_, task.get("head"), task.get("sha256"))
            for key, owner in CONTROL_TASKS.items():
                if _dig(task, "control", key) and name != owner:
                    self._add((*where, "control", key), f"only the {owner} task can send this control")
            policy = task.get("policy")
            if isinstance(policy, dict):
                self._policy((*where, "policy"), policy, exit_ if _is_int(exit_) else None, enabled)

    def _exit(self, where: tuple[Any, ...], exit_: Any) -> None:
        if _is_int(exit_) and exit_ > self.depth:
            self._add(where, f"{exit_} is deeper than the encoder ({self.depth})")

    def _head(self, where: tuple[Any, ...], task: str, exit_: Any, head: Any, sha256: Any) -> None:
        """Run on the head serving `task` at `exit_` the very check the xApp runs when it loads it."""
        from xapp.data import TASKS
        from xapp.model import WeightsFileError
        from xapp.model.heads import load_task_head

        if not _is_int(exit_) or exit_ > self.depth or (head is None and _dig(self.doc, "heads", "manifest") and not self.manifest):
            return  # reported already (the exit, or heads.manifest)
        if head is None and self.foreign_manifest:
            if not any(p.startswith("heads.manifest: ") for p in self.problems):
                self._add(("heads", "manifest"), self.foreign_manifest)
            return
        try:
            path, pin = self.locate(task, exit_, head, sha256)
        except ManifestError as exc:
            self._add((*where, "exit" if head is None and self.manifest else "head"), str(exc))
            return
        try:
            load_task_head(path, pin, task, exit_, self.dim, TASKS[task].classes)
        except WeightsFileError as exc:
            self._add((*where, "head" if isinstance(head, str) else "exit"), str(exc))

    def _policy(self, where: tuple[Any, ...], policy: dict[str, Any], task_exit: int | None, enabled: bool) -> None:
        kind = policy.get("kind")
        threshold, patience, exits = policy.get("threshold"), policy.get("patience"), policy.get("exits")
        if kind not in ("fixed", *DYNAMIC_POLICIES):
            return
        if kind == "fixed":
            for key in ("threshold", "patience", "exits"):
                if key in policy:
                    self._add((*where, key), "not used by the fixed policy")
            return
        if kind in ("entropy", "confidence"):
            if "threshold" not in policy:
                self._add((*where, "threshold"), f"required by the {kind} policy")
            elif _is_number(threshold) and not 0 < threshold <= 1:
                self._add((*where, "threshold"), f"{threshold} is outside (0, 1] for the {kind} policy")
            if "patience" in policy:
                self._add((*where, "patience"), f"not used by the {kind} policy")
        else:
            if "patience" not in policy:
                self._add((*where, "patience"), "required by the patience policy")
            if "threshold" in policy:
                self._add((*where, "threshold"), "not used by the patience policy")
        if not isinstance(exits, list) or not exits:
            self._add((*where, "exits"), f"the {kind} policy needs at least one earlier exit to stop at")
            return
        if kind == "patience" and _is_int(patience) and patience > len(exits):
            self._add((*where, "patience"), f"{patience} can never be reached with {len(exits)} earlier exit(s)")
        previous = 0
        for i, item in enumerate(exits):
            exit_ = _dig(item, "exit")
            if not _is_int(exit_):
                continue
            self._exit((*where, "exits", i, "exit"), exit_)
            if task_exit is not None and exit_ >= task_exit:
                self._add((*where, "exits", i, "exit"), f"{exit_} is not before the task's exit ({task_exit})")
            if exit_ <= previous:
                self._add((*where, "exits", i, "exit"), f"{exit_} does not come after the previous exit ({previous})")
            previous = max(previous, exit_)
            if enabled:
                self._head((*where, "exits", i), where[1], exit_, _dig(item, "head"), _dig(item, "sha256"))


def _tls(root: Path, block: dict[str, Any] | None) -> TlsFiles | None:
    if block is None:
        return None
    cert, key = block.get("cert"), block.get("key")
    return TlsFiles(
        resolve_path(root, block["ca"]),
        resolve_path(root, cert) if cert else None,
        resolve_path(root, key) if key else None,
        block.get("server_name"),
    )


def _curve(root: Path, block: dict[str, Any] | None) -> ZmqCurve | None:
    if block is None:
        return None
    keys = block.get("authorized_keys")
    return ZmqCurve(resolve_path(root, block["secret_key"]), resolve_path(root, keys) if keys else None)


def _build(doc: dict[str, Any], path: Path, root: Path, digest: str, checks: _Checks) -> Descriptor:
    x, enc, e2, pub = doc["xapp"], doc["encoder"], doc["e2"], doc["publish"]
    reconnect = e2.get("reconnect", {})

    def located(task: str, item: dict[str, Any]) -> tuple[Path | None, str | None]:
        try:
            return checks.locate(task, item["exit"], item.get("head"), item.get("sha256"))
        except ManifestError:  # only a disabled task gets here: enabled ones were checked
            return None, None

    tasks = {}
    for name, t in doc["tasks"].items():
        p = t.get("policy", {"kind": "fixed"})
        tasks[name] = TaskSpec(
            name=name,
            enabled=t.get("enabled", True),
            exit=t["exit"],
            head=(own := located(name, t))[0],
            sha256=own[1],
            policy=PolicySpec(
                kind=p["kind"],
                threshold=float(p["threshold"]) if "threshold" in p else None,
                patience=p.get("patience"),
                exits=tuple(ExitHead(e["exit"], *located(name, e)) for e in p.get("exits", ())),
            ),
            control=ControlSpec(**t.get("control", {})),
        )
    return Descriptor(
        path=path,
        root=root,
        source_sha256=digest,
        heads_manifest=checks.manifest[1] if checks.manifest else None,
        xapp=XappIdentity(x["name"], x["version"], x.get("app_id", x["name"]), x.get("instance_id", f"{x['name']}-0")),
        encoder=EncoderSpec(encoder_checkpoint(root, enc["checkpoint"]), enc.get("device", "cpu"), checks.depth,
                            enc.get("precision", "fp32")),
        e2=E2Spec(
            service_model=ServiceModel(e2["service_model"]["name"], e2["service_model"]["version"]),
            nodes=tuple(NodeEndpoint(n["id"], n["address"]) for n in e2["nodes"]),
            reconnect=Reconnect(
                reconnect.get("initial_backoff_ms", 100), reconnect.get("max_backoff_ms", 5000), float(reconnect.get("jitter", 0.2))
            ),
            max_frame_bytes=e2.get("max_frame_bytes", 262144),
            max_down_s=float(e2.get("max_down_s", 30.0)),
            frame_checks=FrameChecks(**e2.get("frame_checks", {})),
            tls=_tls(root, e2.get("tls")),
        ),
        tasks=MappingProxyType(tasks),
        batching=Batching(**doc["batching"]),
        publish=Publish(
            zmq_endpoint=pub["zmq"]["endpoint"],
            redis_url=pub["redis"]["url"],
            stream_maxlen=pub["redis"].get("stream_maxlen", 10000),
            redis_password=pub["redis"].get("password") or None,
            redis_buffer=pub["redis"].get("buffer", 10000),
            redis_tls=_tls(root, pub["redis"].get("tls")),
            zmq_curve=_curve(root, pub["zmq"].get("curve")),
        ),
        ops=Ops(
            doc["ops"]["http_port"],
            doc["ops"].get("log_level", "INFO"),
            bind=doc["ops"].get("bind", "127.0.0.1"),
            max_connections=doc["ops"].get("max_connections", 256),
            request_timeout_s=float(doc["ops"].get("request_timeout_s", 5.0)),
        ),
    )
