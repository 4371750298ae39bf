"""The rules the schema cannot state: exit within the encoder's depth, policy thresholds, unique node
ids, certificate files, and on every head the very check the xApp runs when it loads it (sha256,
task, exit, encoder width, classes). Each problem is reported with its dotted path."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xapp.config.manifest import ManifestError, head_at, read_manifest
from xapp.config.paths import encoder_checkpoint, file_sha256, resolve_path

if TYPE_CHECKING:
    from xapp.model.config import EncoderConfig

DEFAULT_DEPTH = 8  # used when the encoder checkpoint is absent or carries no config metadata

_SHA256 = re.compile(r"[0-9a-f]{64}")


def dotted(parts: tuple[Any, ...] | list[Any]) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top)"


def dig(doc: Any, *keys: Any) -> Any:
    """doc[k1][k2]... or None where the structure is missing or of the wrong type."""
    for k in keys:
        if isinstance(k, int) and isinstance(doc, list) and k < len(doc):
            doc = doc[k]
        elif isinstance(k, str) and isinstance(doc, dict):
            doc = doc.get(k)
        else:
            return None
    return doc


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def read_encoder_config(checkpoint: Path) -> EncoderConfig:
    """The config recorded in the checkpoint's header (the weights are not read)."""
    from xapp.model.checkpoint import read_config

    return read_config(checkpoint)


class DescriptorRules:
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
        self.problems.append(f"{dotted(where)}: {message}")

    def _encoder(self) -> None:
        value = dig(self.doc, "encoder", "checkpoint")
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
        value, pin = dig(self.doc, "heads", "manifest"), dig(self.doc, "heads", "sha256")
        if not isinstance(value, str):
            return
        path = resolve_path(self.root, value)
        try:
            manifest = read_manifest(path)
        except ManifestError as exc:
            self._add(("heads", "manifest"), str(exc))
            return
        if isinstance(pin, str) and _SHA256.fullmatch(pin) and (actual := file_sha256(path)) != pin:
            self._add(("heads", "sha256"), f"{path} has sha256 {actual}, the descriptor pins {pin}")
            return
        trained_on = dig(manifest, "encoder", "sha256")
        checkpoint = encoder_checkpoint(self.root, dig(self.doc, "encoder", "checkpoint"))
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

        name, version = dig(self.doc, "e2", "service_model", "name"), dig(self.doc, "e2", "service_model", "version")
        if isinstance(name, str) and isinstance(version, str):
            try:
                check_service_model(name, version)
            except ServiceModelMismatch as exc:
                self._add(("e2", "service_model"), str(exc))

    def _nodes(self) -> None:
        nodes = dig(self.doc, "e2", "nodes")
        if not isinstance(nodes, list):
            return
        seen: dict[str, int] = {}
        for i, node in enumerate(nodes):
            node_id, address = dig(node, "id"), dig(node, "address")
            if isinstance(node_id, str):
                if node_id in seen:
                    self._add(("e2", "nodes", i, "id"), f"{node_id!r} already used by e2.nodes[{seen[node_id]}]")
                seen.setdefault(node_id, i)
            if isinstance(address, str) and address.rpartition(":")[2].isdigit():
                port = int(address.rpartition(":")[2])
                if not 1 <= port <= 65535:
                    self._add(("e2", "nodes", i, "address"), f"port {port} is outside 1..65535")

    def _reconnect(self) -> None:
        lo, hi = dig(self.doc, "e2", "reconnect", "initial_backoff_ms"), dig(self.doc, "e2", "reconnect", "max_backoff_ms")
        if is_int(lo) and is_int(hi) and lo > hi:
            self._add(("e2", "reconnect", "max_backoff_ms"), f"{hi} is below initial_backoff_ms ({lo})")

    def _batching(self) -> None:
        b = dig(self.doc, "batching")
        if not isinstance(b, dict):
            return
        if is_int(b.get("queue_limit")) and is_int(b.get("max_batch")) and b["queue_limit"] < b["max_batch"]:
            self._add(("batching", "queue_limit"), f"{b['queue_limit']} is below max_batch ({b['max_batch']})")
        if is_number(b.get("deadline_ms")) and is_number(b.get("max_wait_ms")) and b["deadline_ms"] <= b["max_wait_ms"]:
            self._add(
                ("batching", "deadline_ms"),
                f"{b['deadline_ms']} is not above max_wait_ms ({b['max_wait_ms']}): every waiting frame would be shed",
            )

    def _secrets(self) -> None:
        """Certificate and key files named by the TLS and CURVE blocks exist, certs come with keys."""
        for where in (("e2", "tls"), ("publish", "redis", "tls")):
            tls = dig(self.doc, *where)
            if not isinstance(tls, dict):
                continue
            if ("cert" in tls) != ("key" in tls):
                self._add((*where, "key" if "cert" in tls else "cert"), "cert and key go together (mTLS)")
            for key in ("ca", "cert", "key"):
                self._file((*where, key), tls.get(key))
        curve = ("publish", "zmq", "curve")
        self._file((*curve, "secret_key"), dig(self.doc, *curve, "secret_key"))
        keys = dig(self.doc, *curve, "authorized_keys")
        if isinstance(keys, str) and not resolve_path(self.root, keys).is_dir():
            self._add((*curve, "authorized_keys"), f"{keys} is not a directory (looked for {resolve_path(self.root, keys)})")
        url = dig(self.doc, "publish", "redis", "url")
        if dig(self.doc, "publish", "redis", "tls") is not None and isinstance(url, str) and not url.startswith("rediss://"):
            self._add(("publish", "redis", "tls"), f"given but the url {url!r} is not rediss://")

    def _file(self, where: tuple[Any, ...], value: Any) -> None:
        if isinstance(value, str) and not resolve_path(self.root, value).is_file():
            self._add(where, f"{value} does not exist (looked for {resolve_path(self.root, value)})")

    def _tasks(self) -> None:
        from xapp.data import TASKS
        from xapp.e2.frames import IQ_DTYPE
        from xapp.publish.control import CONTROL_KINDS

        tasks = dig(self.doc, "tasks")
        if not isinstance(tasks, dict):
            return
        if tasks and not any(dig(t, "enabled") is not False for t in tasks.values()):
            self._add(("tasks",), "no task is enabled")
        for name, task in tasks.items():
            if not isinstance(task, dict) or name not in TASKS:
                continue
            where = ("tasks", name)
            exit_ = task.get("exit")
            self._exit((*where, "exit"), exit_)
            enabled = task.get("enabled", True) is not False
            if enabled:
                self._head(where, name, exit_, task.get("head"), task.get("sha256"))
            for key, owner in CONTROL_KINDS.items():
                if dig(task, "control", key) and name != owner:
                    self._add((*where, "control", key), f"only the {owner} task can send this control")
            if dig(task, "control", "min_confidence") and not any(dig(task, "control", key) for key in CONTROL_KINDS):
                self._add((*where, "control", "min_confidence"), "no control of this task is enabled, so nothing uses it")
            windows, limit = task.get("windows", 1), dig(self.doc, "e2", "max_frame_bytes")
            antennas, samples = TASKS[name].frame_shape
            size = windows * antennas * samples * IQ_DTYPE.itemsize if is_int(windows) else 0
            if enabled and is_int(limit) and size > limit:
                self._add((*where, "windows"), f"{windows} windows make frames of {size} bytes, "
                                               f"more than e2.max_frame_bytes ({limit}): every one would be rejected")
            policy = task.get("policy")
            if isinstance(policy, dict):
                self._policy((*where, "policy"), policy, exit_ if is_int(exit_) else None, enabled)

    def _exit(self, where: tuple[Any, ...], exit_: Any) -> None:
        if is_int(exit_) and exit_ > self.depth:
            self._add(where, f"{exit_} is deeper than the encoder ({self.depth})")

    def _head(self, where: tuple[Any, ...], task: str, exit_: Any, head: Any, sha256: Any) -> None:
        """Run on the head serving `task` at `exit_` the very check the xApp runs when it loads it."""
        from xapp.data import TASKS
        from xapp.model import WeightsFileError
        from xapp.model.heads import load_task_head

        if not is_int(exit_) or exit_ > self.depth or (head is None and dig(self.doc, "heads", "manifest") and not self.manifest):
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
        from xapp.model.policies import KINDS as POLICY_KINDS

        kind = policy.get("kind")
        threshold, patience, exits = policy.get("threshold"), policy.get("patience"), policy.get("exits")
        if kind not in POLICY_KINDS:
            return
        if kind == "fixed":
            for key in ("threshold", "patience", "exits"):
                if key in policy:
                    self._add((*where, key), "not used by the fixed policy")
            return
        if kind in ("entropy", "confidence"):
            if "threshold" not in policy:
                self._add((*where, "threshold"), f"required by the {kind} policy")
            elif is_number(threshold) and not 0 < threshold <= 1:
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
        if kind == "patience" and is_int(patience) and patience > len(exits):
            self._add((*where, "patience"), f"{patience} can never be reached with {len(exits)} earlier exit(s)")
        previous = 0
        for i, item in enumerate(exits):
            exit_ = dig(item, "exit")
            if not is_int(exit_):
                continue
            self._exit((*where, "exits", i, "exit"), exit_)
            if task_exit is not None and exit_ >= task_exit:
                self._add((*where, "exits", i, "exit"), f"{exit_} is not before the task's exit ({task_exit})")
            if exit_ <= previous:
                self._add((*where, "exits", i, "exit"), f"{exit_} does not come after the previous exit ({previous})")
            previous = max(previous, exit_)
            if enabled:
                self._head((*where, "exits", i), where[1], exit_, dig(item, "head"), dig(item, "sha256"))
