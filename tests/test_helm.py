"""The Helm chart, rendered and linted by the real Helm engine (Helm's Go SDK via helm-python-sdk)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import helm_python as helm  # helm-python-sdk (extras: dev): Helm's Go SDK as a shared library
import pytest
import yaml

from xapp.config import load_descriptor, select_nodes

helm.disable_logging()  # its INFO line about files/descriptor.yaml being a symlink, once per load

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "helm" / "early-exit-xapp"
SIX_NODES = [{"id": f"du-{i}", "address": f"e2-du-{i}.ran.svc:36422"} for i in range(6)]


def render_files(values: dict | None = None) -> dict[str, str]:
    return helm.Chart.load(str(CHART)).render(values or {}, name="ee", namespace="ricxapp")


def render(values: dict | None = None) -> dict[tuple[str, str], dict]:
    objects = {}
    for path, text in render_files(values).items():
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                objects[(doc["kind"], doc["metadata"]["name"])] = doc
    return objects


def container(objects: dict) -> dict:
    (pod,) = [o["spec"]["template"]["spec"] for (kind, _), o in objects.items() if kind == "StatefulSet"]
    (c,) = pod["containers"]
    return c


def env_of(c: dict) -> dict[str, dict]:
    return {e["name"]: e for e in c["env"]}


def rendered_descriptor(objects: dict) -> dict:
    return yaml.safe_load(objects[("ConfigMap", "ee-early-exit-xapp-descriptor")]["data"]["descriptor.yaml"])


def test_default_values() -> None:
    objects = render()
    assert set(objects) == {
        ("ConfigMap", "ee-early-exit-xapp-descriptor"),
        ("Secret", "ee-early-exit-xapp-redis"),
        ("Service", "ee-early-exit-xapp"),
        ("Service", "ee-early-exit-xapp-headless"),
        ("StatefulSet", "ee-early-exit-xapp"),
    }
    sts = objects[("StatefulSet", "ee-early-exit-xapp")]
    assert sts["spec"]["replicas"] == 1 and sts["spec"]["serviceName"] == "ee-early-exit-xapp-headless"
    annotations = sts["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": "8080", "prometheus.io/path": "/metrics"}
    c = container(objects)
    assert c["image"] == "early-exit-xapp:0.1.0" and c["args"] == ["run"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/ric/v1/health/alive", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/ric/v1/health/ready", "port": "http"}
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"http": 8080, "zmq-pub": 5560}
    env = env_of(c)
    assert env["CONFIG_FILE"]["value"] == "/opt/ric/config/descriptor.yaml"
    assert env["XAPP_SHARD_COUNT"]["value"] == "1"
    assert env["REDIS_URL"]["valueFrom"]["secretKeyRef"] == {"name": "ee-early-exit-xapp-redis", "key": "url"}
    assert env["REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "ee-early-exit-xapp-redis"
    # a directory mount (no subPath): ConfigMap edits reach the pod and hot-reload
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == "descriptor"]
    assert mount["mountPath"] == "/opt/ric/config" and "subPath" not in mount
    assert "nvidia.com/gpu" not in c["resources"].get("limits", {})
    for svc in ("ee-early-exit-xapp", "ee-early-exit-xapp-headless"):
        assert {p["name"]: p["port"] for p in objects[("Service", svc)]["spec"]["ports"]} == {"http": 8080, "zmq-pub": 5560}
    secret = objects[("Secret", "ee-early-exit-xapp-redis")]["stringData"]
    assert secret == {"url": "redis://service-ricplt-dbaas-tcp.ricplt:6379/0", "password": ""}


def test_gpu_values() -> None:
    objects = render({"gpu": {"enabled": True, "count": 2}, "redis": {"url": "redis://r:6379/0", "existingSecret": "ricplt-dbaas"}})
    c = container(objects)
    assert c["resources"]["limits"] == {"memory": "2Gi", "nvidia.com/gpu": 2}
    assert rendered_descriptor(objects)["encoder"]["device"] == "cuda"
    assert ("Secret", "ee-early-exit-xapp-redis") not in objects  # the RIC's own secret is used instead
    assert env_of(c)["REDIS_URL"]["valueFrom"]["secretKeyRef"]["name"] == "ricplt-dbaas"


def test_three_replicas_shard_the_nodes() -> None:
    objects = render({"replicaCount": 3, "descriptor": {"e2": {"nodes": SIX_NODES}, "tasks": {"beam": {"exit": 6}}}})
    assert objects[("StatefulSet", "ee-early-exit-xapp")]["spec"]["replicas"] == 3
    assert env_of(container(objects))["XAPP_SHARD_COUNT"]["value"] == "3"
    d = rendered_descriptor(objects)
    assert d["e2"]["nodes"] == SIX_NODES  # the list replaces the default's
    assert d["tasks"]["beam"]["exit"] == 6  # merged, not replaced:
    assert d["tasks"]["beam"]["control"] == {"beam_switch": True, "min_confidence": 0.8}
    notes = render_files({"replicaCount": 3})["early-exit-xapp/templates/NOTES.txt"]
    for ordinal in range(3):
        assert f"tcp://ee-early-exit-xapp-{ordinal}.ee-early-exit-xapp-headless.ricxapp:5560" in notes
    nodes = [type("Node", (), n)() for n in SIX_NODES]
    served = [n.id for ordinal in range(3) for n in select_nodes(nodes, ordinal, 3)]
    assert sorted(served) == sorted(n["id"] for n in SIX_NODES)


def test_rendered_descriptor_passes_validation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The image layout: /opt/ric holds heads/ and xapp/assets/, the ConfigMap is mounted at /opt/ric/config.
    os.symlink(REPO / "heads", tmp_path / "heads")
    os.symlink(REPO / "xapp", tmp_path / "xapp")
    (tmp_path / "config").mkdir()
    path = tmp_path / "config" / "descriptor.yaml"
    objects = render({"replicaCount": 3, "descriptor": {"e2": {"nodes": SIX_NODES}, "publish": {"wire": "batch"}},
                      "ports": {"http": 9090}})
    path.write_text(objects[("ConfigMap", "ee-early-exit-xapp-descriptor")]["data"]["descriptor.yaml"])
    monkeypatch.setenv("HOSTNAME", "ee-early-exit-xapp-2")
    monkeypatch.setenv("REDIS_URL", "redis://service-ricplt-dbaas-tcp.ricplt:6379/0")
    monkeypatch.setenv("REDIS_PASSWORD", "from-the-secret")
    d = load_descriptor(path)
    shipped = load_descriptor(REPO / "descriptors" / "default.yaml")

    def trained(desc):  # what the heads training tool writes into descriptors/default.yaml
        return {n: (t.exit, t.head.relative_to(desc.root), t.sha256, t.policy.kind) for n, t in desc.tasks.items()}

    assert trained(d) == trained(shipped)
    assert d.xapp.instance_id == "ee-early-exit-xapp-2" and d.publish.redis_password == "from-the-secret"
    assert d.ops.http_port == 9090 and d.publish.zmq_endpoint == "tcp://*:5560"
    assert d.publish.wire == "batch" and d.publish.redis_url == "redis://service-ricplt-dbaas-tcp.ricplt:6379/0"


def test_lint_is_clean() -> None:
    for values in ({}, {"gpu": {"enabled": True}}, {"replicaCount": 3}):
        report = helm.lint(str(CHART), values, strict=True)
        assert report["errors"] == []
        assert [m for m in report["messages"] if m["severity"] >= 2] == [], report["messages"]


@pytest.mark.parametrize(
    "values, where",
    [
        ({"replicaCount": 0}, "/replicaCount"),
        ({"replicaCount": "3"}, "/replicaCount"),
        ({"gpu": {"enabled": True, "count": "two"}}, "/gpu/count"),
        ({"ports": {"http": 70000, "zmq": 5560}}, "/ports/http"),
        ({"redis": {"url": "http://dbaas:6379"}}, "/redis/url"),
        ({"image": {"repository": ""}}, "/image/repository"),
        ({"replicas": 3}, "replicas"),
    ],
)
def test_bad_values_are_refused_by_the_schema(values: dict, where: str) -> None:
    chart = helm.Chart.load(str(CHART))
    with pytest.raises(helm.HelmValuesError, match=where):
        chart.validate_schema(values)
    with pytest.raises(helm.HelmValuesError):
        chart.render(values, name="ee", namespace="ricxapp")


OBSERVABILITY = {"grafana": {"dashboard": {"enabled": True, "annotations": {"grafana_folder": "RIC"}}},
                 "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}, "shedRatio": 0.05}}


def test_dashboard_and_rules_are_optional() -> None:
    assert not {kind for kind, _ in render()} & {"PrometheusRule"}
    assert ("ConfigMap", "ee-early-exit-xapp-dashboard") not in render()
    objects = render(OBSERVABILITY)
    dashboard = objects[("ConfigMap", "ee-early-exit-xapp-dashboard")]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"  # the Grafana sidecar's label
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "RIC"}
    panels = json.loads(dashboard["data"]["early-exit-xapp.json"])["panels"]
    assert json.loads(dashboard["data"]["early-exit-xapp.json"]) == json.loads((CHART / "dashboards" / "early-exit-xapp.json").read_text())
    assert len(panels) >= 10 and all(p["targets"] for p in panels)
    rule = objects[("PrometheusRule", "ee-early-exit-xapp")]
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(alerts) == {"XappE2NodeSilent", "XappRejectRatioHigh", "XappShedRatioHigh", "XappLatencyP99AboveDeadline",
                           "XappDecisionsUnsure", "XappDescriptorReloadRejected"}
    assert alerts["XappDecisionsUnsure"]["expr"].endswith("< 0.15")
    assert alerts["XappE2NodeSilent"]["expr"].endswith("> 30")
    assert alerts["XappShedRatioHigh"]["expr"].endswith("> 0.05")
    assert "{{ $labels.node }}" in alerts["XappE2NodeSilent"]["annotations"]["summary"]  # left for Prometheus to fill
    for r in alerts.values():
        assert 'namespace="ricxapp", pod=~"ee-early-exit-xapp-[0-9]+"' in r["expr"]
    for values in ({}, OBSERVABILITY):
        report = helm.lint(str(CHART), values, strict=True)
        assert report["errors"] == [] and [m for m in report["messages"] if m["severity"] >= 2] == []
    with pytest.raises(helm.HelmValuesError, match="prometheusRule"):
        helm.Chart.load(str(CHART)).validate_schema({"prometheusRule": {"rejectRatio": 2}})


def test_tls_secret_is_mounted_and_named_in_the_descriptor() -> None:
    import jsonschema

    from xapp.config.descriptor import load_schema

    plain = rendered_descriptor(render())
    assert plain["ops"]["bind"] == "0.0.0.0" and "tls" not in plain["e2"]
    assert all(v["name"] != "tls" for v in container(render())["volumeMounts"])

    objects = render({"tls": {"secretName": "xapp-tls", "redis": True, "zmqCurve": True}})
    d = rendered_descriptor(objects)
    jsonschema.validate({**d, "publish": {**d["publish"], "redis": {**d["publish"]["redis"], "url": "rediss://db:6379/0"}}},
                        load_schema())  # the URL is ${REDIS_URL} until the pod expands it
    assert d["e2"]["tls"] == {"ca": "/opt/ric/tls/ca.crt", "cert": "/opt/ric/tls/tls.crt", "key": "/opt/ric/tls/tls.key"}
    assert d["publish"]["redis"]["tls"] == {"ca": "/opt/ric/tls/ca.crt"}
    assert d["publish"]["zmq"]["curve"] == {"secret_key": "/opt/ric/tls/zmq-server.key_secret"}
    mounts = {m["name"]: m for m in container(objects)["volumeMounts"]}
    assert mounts["tls"] == {"name": "tls", "mountPath": "/opt/ric/tls", "readOnly": True}
    (pod,) = [o["spec"]["template"]["spec"] for (kind, _), o in objects.items() if kind == "StatefulSet"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "xapp-tls"
