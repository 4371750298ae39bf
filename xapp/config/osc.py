"""Export a descriptor to the O-RAN SC onboarding format: `config-file.json` (the xApp descriptor
that `dms_cli onboard` / the xapp_onboarder packages into a Helm chart) and `schema.json` (the
JSON Schema of its `controls` section, which the onboarder embeds into its own draft-07 schema).

`controls` carries our whole descriptor, so a RIC-deployed pod can be pointed at config-file.json
(CONFIG_FILE=/opt/ric/config/config-file.json) and load_descriptor() reads it as-is."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.metrics_core import Metric

from xapp.config.descriptor import load_descriptor, load_schema
from xapp.config.types import Descriptor
from xapp.ops.http import ALIVE, READY
from xapp.ops.metrics import Metrics

DRAFT_07 = "http://json-schema.org/draft-07/schema#"


def export_osc(
    descriptor_path: str | Path,
    out_dir: str | Path,
    registry: str = "docker.io",
    image: str | None = None,
    tag: str | None = None,
) -> tuple[Path, Path]:
    """Validate the descriptor, then write DIR/config-file.json and DIR/schema.json."""
    descriptor = load_descriptor(descriptor_path)
    raw = yaml.safe_load(Path(descriptor_path).read_bytes())  # unexpanded: ${REDIS_PASSWORD} stays a reference
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config_path, schema_path = out / "config-file.json", out / "schema.json"
    config = config_file(descriptor, raw, registry, image or descriptor.xapp.name, tag or descriptor.xapp.version)
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    schema_path.write_text(json.dumps(controls_schema(), indent=2) + "\n")
    return config_path, schema_path


def config_file(descriptor: Descriptor, controls: dict[str, Any], registry: str, image: str, tag: str) -> dict[str, Any]:
    name, port = descriptor.xapp.name, descriptor.ops.http_port
    ports = [{"name": "http", "container": name, "port": port, "description": "health probes and Prometheus /metrics"}]
    zmq_port = tcp_port(descriptor.publish.zmq_endpoint)
    if zmq_port is not None:
        ports.append({"name": "zmq-pub", "container": name, "port": zmq_port, "description": "decisions, ZMQ PUB topic <task>/<node>"})
    return {
        "name": name,
        "version": descriptor.xapp.version,
        "containers": [
            {"name": name, "image": {"registry": registry, "name": image, "tag": tag}, "command": ["xapp"], "args": ["run"]}
        ],
        "livenessProbe": _probe(ALIVE, port),
        "readinessProbe": _probe(READY, port),
        "messaging": {"ports": ports},
        "controls": controls,
        "metrics": metric_descriptions(name),
    }


def controls_schema() -> dict[str, Any]:
    """Our descriptor schema, self-contained (refs inlined) and declared draft-07: the onboarder
    nests it under properties.controls, where '#/$defs/...' would no longer resolve."""
    schema = load_schema()
    inlined = _inline_refs(schema, schema)
    inlined.pop("$defs", None)
    inlined.pop("$id", None)
    return {"$schema": DRAFT_07, **{k: v for k, v in inlined.items() if k != "$schema"}}


def metric_descriptions(xapp_name: str) -> list[dict[str, str]]:
    """One entry per metric family, named as Prometheus scrapes it (counters gain _total)."""
    families: list[Metric] = list(Metrics().registry.collect())
    return [
        {
            "objectName": xapp_name,
            "objectInstance": m.name,
            "name": f"{m.name}_total" if m.type == "counter" else m.name,
            "type": m.type,
            "description": m.documentation,
        }
        for m in families
    ]


def tcp_port(endpoint: str) -> int | None:
    if not endpoint.startswith("tcp://"):
        return None
    tail = endpoint.rpartition(":")[2]
    return int(tail) if tail.isdigit() else None


def _probe(path: str, port: int) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": port}, "initialDelaySeconds": 5, "periodSeconds": 15}


def _inline_refs(node: Any, root: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = root
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return _inline_refs(copy.deepcopy(target), root)
        return {k: _inline_refs(v, root) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline_refs(v, root) for v in node]
    return node
