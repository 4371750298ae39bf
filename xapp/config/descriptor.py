"""The xApp descriptor: a YAML file validated by `descriptor.schema.json` plus checks the schema
cannot express (exit within the encoder's depth, policy thresholds, unique node ids) and, on every
head, the very check the xApp runs when it loads it (sha256, task, exit, encoder width, classes).
Every problem is collected, each with its dotted path, so an operator fixes a descriptor in one round.

Heads: `heads.manifest` (pinned by `heads.sha256`) names the manifest once; each task then sets only
its `exit` (and policy) and gets the manifest's head at that exit. A task's own `head` (and
`sha256`) overrides it for custom heads.

String values may reference environment variables as ${VAR} or ${VAR:-default}. Types are in
xapp.config.types, the rules beyond the schema in xapp.config.rules, the path rule in xapp.config.paths.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jsonschema
import yaml

from xapp.config.manifest import ManifestError
from xapp.config.paths import descriptor_root, encoder_checkpoint, resolve_path
from xapp.config.rules import DescriptorRules, dotted
from xapp.config.types import (
    Batching,
    ControlSpec,
    Descriptor,
    DescriptorError,
    E2Spec,
    EncoderSpec,
    ExitHead,
    FrameChecks,
    Ops,
    PolicySpec,
    Publish,
    Reconnect,
    ServiceModel,
    TaskSettings,
    XappIdentity,
)
from xapp.vocab import NodeEndpoint, TlsFiles, ZmqCurve

SCHEMA_PATH = Path(__file__).with_name("descriptor.schema.json")
CONFIG_FILE_ENV = "CONFIG_FILE"  # O-RAN SC convention: the platform points the xApp at its config

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def descriptor_path_from_env(default: str | os.PathLike[str]) -> Path:
    """`CONFIG_FILE` when set (how O-RAN SC and our Helm chart point the xApp at its config), else `default`."""
    return Path(os.environ.get(CONFIG_FILE_ENV) or default)


@cache
def load_schema() -> dict[str, Any]:
    """The descriptor's JSON Schema, with the enums whose one home is the code filled in: the task
    names (xapp.data.TASKS) and the exit policy kinds (xapp.model.policies.KINDS)."""
    from xapp.data import TASKS
    from xapp.model.policies import KINDS

    schema = json.loads(SCHEMA_PATH.read_text())
    schema["properties"]["tasks"]["propertyNames"]["enum"] = list(TASKS)
    schema["$defs"]["policy"]["properties"]["kind"]["enum"] = list(KINDS)
    return schema


def with_defaults(doc: Any, schema: dict[str, Any], root: dict[str, Any]) -> Any:
    """`doc` with every default the schema states filled in where the key is absent (a valid document
    only). An absent optional block whose keys all have defaults is filled in whole."""
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rpartition("/")[2]]
    if not isinstance(doc, dict):
        return doc
    if "properties" not in schema:
        extra = schema.get("additionalProperties")
        return {k: with_defaults(v, extra, root) for k, v in doc.items()} if isinstance(extra, dict) else doc
    out = dict(doc)
    for key, sub in schema["properties"].items():
        if key in out:
            out[key] = with_defaults(out[key], sub, root)
        elif "default" in sub:
            out[key] = sub["default"]
        elif _fillable(sub, root):
            out[key] = with_defaults({}, sub, root)
    return out


def _fillable(schema: dict[str, Any], root: dict[str, Any]) -> bool:
    if "$ref" in schema:
        return False  # optional referenced blocks (tls, policy) mean "absent" when absent
    props = schema.get("properties", {})
    return schema.get("type") == "object" and not schema.get("required") and bool(props) and all("default" in p for p in props.values())


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
    checks = DescriptorRules(doc, root)
    problems += checks.run()
    if problems:
        raise DescriptorError(path, problems)
    schema = load_schema()
    return _build(with_defaults(doc, schema, schema), path, root, hashlib.sha256(raw).hexdigest(), checks)


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
            problems.append(f"{dotted(where)}: environment variable {name} is not set (write ${{{name}:-default}} for a fallback)")
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
                problems.append(f"{dotted([*where, key])}: unknown key (expected one of: {', '.join(known)})")
        elif "propertyNames" in err.schema_path:  # the only one: task names
            problems.append(f"{dotted([*where, err.instance])}: unknown task (known: {', '.join(err.validator_value)})")
        elif err.validator == "required":
            missing = re.match(r"'([^']+)'", err.message)
            problems.append(f"{dotted([*where, missing.group(1) if missing else '?'])}: required")
        elif err.validator == "pattern":
            hint = err.schema.get("description", f"must match {err.validator_value}")
            problems.append(f"{dotted(where)}: {err.instance!r} is malformed ({hint})")
        else:
            problems.append(f"{dotted(where)}: {err.message}")
    return problems


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


def _build(doc: dict[str, Any], path: Path, root: Path, digest: str, checks: DescriptorRules) -> Descriptor:
    """The Descriptor of a valid document whose schema defaults are filled in."""
    x, enc, e2, pub = doc["xapp"], doc["encoder"], doc["e2"], doc["publish"]
    reconnect, redis, zmq, ops = e2["reconnect"], pub["redis"], pub["zmq"], doc["ops"]

    def located(task: str, item: dict[str, Any]) -> tuple[Path | None, str | None]:
        try:
            return checks.locate(task, item["exit"], item.get("head"), item.get("sha256"))
        except ManifestError:  # only a disabled task gets here: enabled ones were checked
            return None, None

    tasks = {}
    for name, t in doc["tasks"].items():
        p = t["policy"]
        tasks[name] = TaskSettings(
            name=name,
            enabled=t["enabled"],
            exit=t["exit"],
            head=(own := located(name, t))[0],
            sha256=own[1],
            policy=PolicySpec(
                kind=p["kind"],
                threshold=float(p["threshold"]) if "threshold" in p else None,
                patience=p.get("patience"),
                exits=tuple(ExitHead(e["exit"], *located(name, e)) for e in p.get("exits", ())),
            ),
            control=ControlSpec(**{**t["control"], "min_confidence": float(t["control"]["min_confidence"])}),
            windows=t["windows"],
        )
    return Descriptor(
        path=path,
        root=root,
        source_sha256=digest,
        heads_manifest=checks.manifest[1] if checks.manifest else None,
        # app_id and instance_id derive from the name when absent, so the schema cannot state them.
        xapp=XappIdentity(x["name"], x["version"], x.get("app_id", x["name"]), x.get("instance_id", f"{x['name']}-0")),
        encoder=EncoderSpec(encoder_checkpoint(root, enc["checkpoint"]), enc["device"], checks.depth, enc["precision"],
                            enc["runtime"], float(enc["min_agreement"])),
        e2=E2Spec(
            service_model=ServiceModel(e2["service_model"]["name"], e2["service_model"]["version"]),
            nodes=tuple(NodeEndpoint(n["id"], n["address"]) for n in e2["nodes"]),
            reconnect=Reconnect(reconnect["initial_backoff_ms"], reconnect["max_backoff_ms"], float(reconnect["jitter"])),
            max_frame_bytes=e2["max_frame_bytes"],
            max_down_s=float(e2["max_down_s"]),
            frame_checks=FrameChecks(float(e2["frame_checks"]["max_clock_skew_s"]), e2["frame_checks"]["replay_window"]),
            tls=_tls(root, e2.get("tls")),
        ),
        tasks=MappingProxyType(tasks),
        batching=Batching(**doc["batching"]),
        publish=Publish(
            zmq_endpoint=zmq["endpoint"],
            redis_url=redis["url"],
            stream_maxlen=redis["stream_maxlen"],
            redis_password=redis.get("password") or None,
            redis_buffer=redis["buffer"],
            redis_tls=_tls(root, redis.get("tls")),
            zmq_curve=_curve(root, zmq.get("curve")),
            wire=pub["wire"],
        ),
        ops=Ops(ops["http_port"], ops["log_level"], ops["bind"], ops["max_connections"], float(ops["request_timeout_s"])),
    )
