"""`xapp descriptor export-osc` against the O-RAN SC onboarder's field rules.

The rules below restate what the O-RAN SC xapp_onboarder checks before it packages a chart
(o-ran-sc/ric-plt-appmgr, xapp_orchestrater/dev/xapp_onboarder/xapp_onboarder/):
  - helm_controller/xapp_schema.py: the draft-07 root schema for config-file.json (name, semver
    version, containers[name, image{registry (host[:port] pattern), name, tag}, command/args string
    arrays], liveness/readiness probes = exec|httpGet{path, port:int} + initialDelaySeconds +
    periodSeconds, messaging.ports[name, container, port:int] with txMessages/rxMessages/policies
    all-or-none, metrics[objectName, objectInstance, name, type, description]);
  - api/onboard.py: the xApp's schema.json replaces properties.controls, the combined schema must
    pass Draft7Validator.check_schema, and config-file.json must validate against it;
  - helm_controller/xApp_builder.py: `name` (or legacy `xapp_name`) and `version` are required and
    become the chart's name and version.
The onboarder's code declares metrics as "type": "object" while its guide (docs/xapp_onboarder/guide/
embedded-schema.json) and every O-RAN SC xApp use an array; we follow the guide and the xApps.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest

from test_config import base_doc, make_root, write_doc
from xapp.config import DescriptorError, load_descriptor
from xapp.config.osc import export_osc
from xapp.ops.metrics import Metrics

SEMVER = r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$"
REGISTRY = r"^([A-Za-z0-9.-]+\.[A-Za-z]+|(\d{1,3}\.){3}\d{1,3})(:\d+)?$"
STRINGS = {"type": "array", "items": {"type": "string"}}


def probe_rules() -> dict:
    return {
        "type": "object",
        "properties": {
            "exec": {"type": "object", "required": ["command"], "properties": {"command": STRINGS}},
            "httpGet": {
                "type": "object",
                "required": ["path", "port"],
                "properties": {"path": {"type": "string"}, "port": {"type": "integer"}},
            },
            "initialDelaySeconds": {"type": "integer"},
            "periodSeconds": {"type": "integer"},
        },
        "oneOf": [
            {"required": ["exec", "initialDelaySeconds", "periodSeconds"]},
            {"required": ["httpGet", "initialDelaySeconds", "periodSeconds"]},
        ],
    }


ONBOARDER_RULES = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "anyOf": [{"required": ["name"]}, {"required": ["xapp_name"]}],
    "required": ["version", "containers"],
    "properties": {
        "name": {"type": "string"},
        "version": {"type": "string", "pattern": SEMVER},
        "containers": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "image"],
                "properties": {
                    "name": {"type": "string"},
                    "image": {
                        "type": "object",
                        "required": ["registry", "name", "tag"],
                        "properties": {
                            "registry": {"type": "string", "pattern": REGISTRY},
                            "name": {"type": "string"},
                            "tag": {"type": "string"},
                        },
                    },
                    "command": STRINGS,
                    "args": STRINGS,
                },
            },
        },
        "livenessProbe": probe_rules(),
        "readinessProbe": probe_rules(),
        "messaging": {
            "type": "object",
            "required": ["ports"],
            "properties": {
                "ports": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "container", "port"],
                        "dependencies": {
                            "txMessages": ["rxMessages", "policies"],
                            "rxMessages": ["txMessages", "policies"],
                            "policies": ["rxMessages", "txMessages"],
                        },
                        "properties": {
                            "name": {"type": "string"},
                            "container": {"type": "string"},
                            "port": {"type": "integer"},
                            "description": {"type": "string"},
                        },
                    },
                }
            },
        },
        "metrics": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["objectName", "objectInstance", "name", "type", "description"],
                "properties": {k: {"type": "string"} for k in ("objectName", "objectInstance", "name", "type", "description")},
            },
        },
        "controls": {"required": ["__empty_control_section__"]},  # replaced by the xApp's schema.json
    },
}


def onboard(config: dict, controls_schema: dict) -> None:
    """What the onboarder does with config-file.json and schema.json before packaging."""
    schema = copy.deepcopy(ONBOARDER_RULES)
    schema["properties"]["controls"] = controls_schema
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(config)


@pytest.fixture
def exported(tmp_path: Path) -> tuple[Path, dict, dict]:
    root = make_root(tmp_path)
    doc = base_doc()
    doc["publish"]["redis"]["password"] = "${REDIS_PASSWORD:-}"
    doc["publish"]["zmq"]["endpoint"] = "tcp://*:5560"
    source = write_doc(root, doc)
    config_path, schema_path = export_osc(source, root / "osc", registry="registry.example.org:5000", tag="0.1.0-rc1")
    return source, json.loads(config_path.read_text()), json.loads(schema_path.read_text())


def test_export_is_accepted_by_the_onboarder_rules(exported: tuple[Path, dict, dict]) -> None:
    source, config, schema = exported
    onboard(config, schema)
    container = config["containers"][0]
    assert config["name"] == container["name"] == "early-exit-xapp" and config["version"] == "0.1.0"
    assert container["image"] == {"registry": "registry.example.org:5000", "name": "early-exit-xapp", "tag": "0.1.0-rc1"}
    assert config["livenessProbe"]["httpGet"] == {"path": "/ric/v1/health/alive", "port": 8080}
    assert config["readinessProbe"]["httpGet"] == {"path": "/ric/v1/health/ready", "port": 8080}
    assert {p["name"]: p["port"] for p in config["messaging"]["ports"]} == {"http": 8080, "zmq-pub": 5560}
    assert config["controls"]["tasks"]["beam"]["exit"] == 4  # the exit configuration travels in controls
    assert config["controls"]["publish"]["redis"]["password"] == "${REDIS_PASSWORD:-}"  # a reference, never a value
    assert len(config["metrics"]) == len(list(Metrics().registry.collect()))
    assert {"name": "xapp_frames_in_total", "type": "counter"}.items() <= next(
        m for m in config["metrics"] if m["objectInstance"] == "xapp_frames_in"
    ).items()


def test_onboarder_rules_and_schema_json_refuse_what_they_should(exported: tuple[Path, dict, dict]) -> None:
    _, config, schema = exported
    breakages = {
        "probe without period": lambda c: c["livenessProbe"].pop("periodSeconds"),
        "port without container": lambda c: c["messaging"]["ports"][0].pop("container"),
        "registry without a domain": lambda c: c["containers"][0]["image"].update(registry="localhost"),
        "metric without description": lambda c: c["metrics"][0].pop("description"),
        "exit as text": lambda c: c["controls"]["tasks"]["beam"].update(exit="deep"),
        "unknown task": lambda c: c["controls"]["tasks"].update(weather={"exit": 1, "head": "x"}),
        "unknown policy": lambda c: c["controls"]["tasks"]["beam"]["policy"].update(kind="sometimes"),
    }
    for name, breakage in breakages.items():
        broken = copy.deepcopy(config)
        breakage(broken)
        with pytest.raises(jsonschema.ValidationError):
            onboard(broken, schema)
            pytest.fail(f"accepted: {name}")


def test_config_file_json_loads_as_the_same_descriptor(exported: tuple[Path, dict, dict], tmp_path: Path) -> None:
    # Deployed by the O-RAN SC chart, CONFIG_FILE points at /opt/ric/config/config-file.json.
    source, config, _ = exported
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config-file.json").write_text(json.dumps(config))
    from_osc = load_descriptor(tmp_path / "config" / "config-file.json")
    original = load_descriptor(source)
    assert from_osc.tasks == original.tasks and from_osc.batching == original.batching and from_osc.e2 == original.e2
    config["controls"]["tasks"]["beam"]["exit"] = 9
    (tmp_path / "config" / "config-file.json").write_text(json.dumps(config))
    with pytest.raises(DescriptorError, match=r"controls\.tasks\.beam\.exit: 9 is deeper than the encoder \(6\)"):
        load_descriptor(tmp_path / "config" / "config-file.json")


def test_export_refuses_an_invalid_descriptor(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    doc = base_doc()
    doc["tasks"]["beam"]["exit"] = 11
    with pytest.raises(DescriptorError, match="tasks.beam.exit: 11 is deeper"):
        export_osc(write_doc(root, doc), root / "osc")
    assert not (root / "osc").exists()
