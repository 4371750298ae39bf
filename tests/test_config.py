"""Descriptor loading and validation: every problem reported with its path, files checked."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import pytest
import yaml

from xapp.config import Descriptor, DescriptorError, descriptor_path_from_env, load_descriptor

REPO = Path(__file__).resolve().parents[1]


def write_head(path: Path, seed: int = 0) -> str:
    """A head for the task and exit its path names (heads/<task>/exit<k>.safetensors), as wide as
    write_encoder's encoder: what `xapp heads train` writes."""
    import torch

    from xapp.data import TASKS
    from xapp.model import Head, save_head

    task, exit_ = path.parent.name, int(path.stem.removeprefix("exit"))
    classes = list(TASKS[task].classes)
    torch.manual_seed(seed)
    return save_head(path, Head(16, len(classes)), {"task": task, "exit": exit_, "classes": classes})


def write_encoder(path: Path, depth: int) -> None:
    """A tiny encoder saved the way the lead's pre-training saves the real one."""
    from xapp.model import Encoder, EncoderConfig, save_encoder

    save_encoder(path, Encoder(EncoderConfig(dim=16, depth=depth, heads=2)))


def base_doc() -> dict:
    return {
        "xapp": {"name": "early-exit-xapp", "version": "0.1.0"},
        "encoder": {"checkpoint": "assets/encoder.safetensors", "device": "cpu"},
        "e2": {
            "service_model": {"name": "oran-e2sm-iq", "version": "v1"},
            "nodes": [{"id": "n0", "address": "127.0.0.1:50051"}, {"id": "n1", "address": "e2sim-1.e2sim:50051"}],
        },
        "tasks": {
            "modulation": {"exit": 3, "head": "heads/modulation/exit3.safetensors", "policy": {"kind": "fixed"}},
            "beam": {
                "exit": 4,
                "head": "heads/beam/exit4.safetensors",
                "policy": {
                    "kind": "confidence",
                    "threshold": 0.9,
                    "exits": [{"exit": 2, "head": "heads/beam/exit2.safetensors"}],
                },
                "control": {"beam_switch": True},
            },
            "los": {"enabled": False, "exit": 2, "head": "heads/los/missing.safetensors"},
        },
        "batching": {"max_batch": 16, "max_wait_ms": 5, "queue_limit": 64, "deadline_ms": 100},
        "publish": {"zmq": {"endpoint": "tcp://127.0.0.1:5560"}, "redis": {"url": "redis://127.0.0.1:6379/0"}},
        "ops": {"http_port": 8080},
    }


def make_root(path: Path) -> Path:
    """A repo-like root for base_doc(): descriptors/ next to heads/ and assets/."""
    write_encoder(path / "assets" / "encoder.safetensors", depth=6)
    for rel in ("modulation/exit3", "beam/exit4", "beam/exit2", "beam/exit1"):
        write_head(path / "heads" / f"{rel}.safetensors")
    (path / "descriptors").mkdir()
    return path


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_root(tmp_path)


def write_doc(root: Path, doc: dict, name: str = "d.yaml") -> Path:
    path = root / "descriptors" / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(DescriptorError) as info:
        load_descriptor(path)
    assert str(path) in str(info.value)
    return info.value.problems


def test_valid_descriptor_resolves_paths_and_defaults(root: Path) -> None:
    d = load_descriptor(write_doc(root, base_doc()))
    assert isinstance(d, Descriptor)
    assert d.root == root
    assert d.encoder.depth == 6 and d.encoder.checkpoint == root / "assets" / "encoder.safetensors"
    assert d.xapp.app_id == "early-exit-xapp" and d.xapp.instance_id == "early-exit-xapp-0"
    assert [n.id for n in d.e2.nodes] == ["n0", "n1"]
    assert d.e2.reconnect.initial_backoff_ms == 100 and d.e2.max_frame_bytes == 262144
    beam = d.tasks["beam"]
    assert beam.head == root / "heads" / "beam" / "exit4.safetensors" and beam.sha256 is None
    assert beam.policy.kind == "confidence" and beam.policy.threshold == 0.9
    assert [e.exit for e in beam.policy.exits] == [2] and beam.control.beam_switch
    assert beam.control.min_confidence == 0.0  # every decision is acted on unless the descriptor says otherwise
    assert list(d.tasks) == ["modulation", "beam", "los"]
    assert list(d.enabled_tasks) == ["modulation", "beam"]  # los is off, so its missing head is fine
    assert d.publish.stream_maxlen == 10000 and d.publish.redis_password is None and d.ops.log_level == "INFO"
    assert d.publish.wire == "decision"
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.batching.max_batch = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        d.tasks["beam"] = beam  # type: ignore[index]


def test_exit_deeper_than_checkpoint_depth(root: Path) -> None:
    doc = base_doc()
    doc["tasks"]["beam"]["exit"] = 7
    assert problems_of(write_doc(root, doc)) == ["tasks.beam.exit: 7 is deeper than the encoder (6)"]


def test_depth_falls_back_to_8_without_checkpoint(root: Path) -> None:
    doc = base_doc()
    doc["encoder"]["checkpoint"] = "assets/not-trained-yet.safetensors"
    doc["tasks"]["beam"]["exit"] = 11
    assert problems_of(write_doc(root, doc)) == ["tasks.beam.exit: 11 is deeper than the encoder (8)"]


def test_unreadable_checkpoint(root: Path) -> None:
    (root / "assets" / "encoder.safetensors").write_bytes(b"not safetensors")
    (problem,) = problems_of(write_doc(root, base_doc()))
    assert problem.startswith("encoder.checkpoint: ") and "is not a readable safetensors encoder" in problem


def test_every_problem_is_listed_with_its_path(root: Path) -> None:
    doc = base_doc()
    doc["xapp"]["colour"] = "blue"
    doc["tasks"]["weather"] = {"exit": 1, "head": "x"}
    doc["tasks"]["modulation"]["head"] = "heads/modulation/exit9.safetensors"
    doc["tasks"]["beam"]["policy"]["threshold"] = 1.5
    doc["tasks"]["beam"]["policy"]["exits"][0]["exit"] = 5
    doc["e2"]["nodes"][1]["id"] = "n0"
    doc["e2"]["nodes"][0]["address"] = "no-port"
    doc["batching"]["queue_limit"] = 8
    doc["publish"]["wire"] = "columns"
    del doc["ops"]["http_port"]
    problems = problems_of(write_doc(root, doc))
    expected = [
        "xapp.colour: unknown key",
        "tasks.weather: unknown task (known: modulation, interference, beam, los, fingerprint)",
        f"tasks.modulation.head: {root}/heads/modulation/exit9.safetensors: no such weights file",
        "tasks.beam.policy.threshold: 1.5 is outside (0, 1] for the confidence policy",
        "tasks.beam.policy.exits[0].exit: 5 is not before the task's exit (4)",
        f"tasks.beam.policy.exits[0].head: {root}/heads/beam/exit2.safetensors was trained at exit 2, configured at exit 5",
        "e2.nodes[1].id: 'n0' already used by e2.nodes[0]",
        "e2.nodes[0].address: 'no-port' is malformed",
        "batching.queue_limit: 8 is below max_batch (16)",
        "publish.wire: ",
        "ops.http_port: required",
    ]
    for line in expected:
        assert any(p.startswith(line) for p in problems), (line, problems)
    assert len(problems) == len(expected), problems


def test_sha256_pinning(root: Path) -> None:
    doc = base_doc()
    good = hashlib.sha256((root / "heads/modulation/exit3.safetensors").read_bytes()).hexdigest()
    doc["tasks"]["modulation"]["sha256"] = good
    assert load_descriptor(write_doc(root, doc)).tasks["modulation"].sha256 == good
    write_head(root / "heads/modulation/exit3.safetensors", seed=1)  # retrained behind the descriptor's back
    (problem,) = problems_of(write_doc(root, doc))
    assert problem.startswith("tasks.modulation.head: ") and f"does not match the pinned {good}" in problem
    doc["tasks"]["modulation"]["sha256"] = "ABC"
    (problem,) = problems_of(write_doc(root, doc))
    assert problem.startswith("tasks.modulation.sha256: 'ABC' is malformed")


@pytest.mark.parametrize(
    "policy, expected",
    [
        ({"kind": "fixed", "threshold": 0.5}, ["tasks.beam.policy.threshold: not used by the fixed policy"]),
        ({"kind": "entropy", "exits": [{"exit": 2, "head": "heads/beam/exit2.safetensors"}]},
         ["tasks.beam.policy.threshold: required by the entropy policy"]),
        ({"kind": "entropy", "threshold": 0.3}, ["tasks.beam.policy.exits: the entropy policy needs at least one earlier exit"]),
        ({"kind": "patience", "patience": 3, "exits": [{"exit": 1, "head": "heads/beam/exit1.safetensors"},
                                                         {"exit": 2, "head": "heads/beam/exit2.safetensors"}]},
         ["tasks.beam.policy.patience: 3 can never be reached with 2 earlier exit(s)"]),
        ({"kind": "patience", "patience": 2, "exits": [{"exit": 2, "head": "heads/beam/exit2.safetensors"},
                                                         {"exit": 2, "head": "heads/beam/exit2.safetensors"}]},
         ["tasks.beam.policy.exits[1].exit: 2 does not come after the previous exit (2)"]),
        ({"kind": "sometimes"}, ["tasks.beam.policy.kind: 'sometimes' is not one of"]),
    ],
)
def test_policy_rules(root: Path, policy: dict, expected: list[str]) -> None:
    doc = base_doc()
    doc["tasks"]["beam"]["policy"] = policy
    problems = problems_of(write_doc(root, doc))
    assert len(problems) == len(expected) and all(p.startswith(e) for p, e in zip(problems, expected)), problems


def test_control_belongs_to_its_task(root: Path) -> None:
    doc = base_doc()
    doc["tasks"]["modulation"]["control"] = {"beam_switch": True}
    assert problems_of(write_doc(root, doc)) == ["tasks.modulation.control.beam_switch: only the beam task can send this control"]


def test_control_min_confidence(root: Path) -> None:
    doc = base_doc()
    doc["tasks"]["beam"]["control"]["min_confidence"] = 0.8
    assert load_descriptor(write_doc(root, doc)).tasks["beam"].control.min_confidence == 0.8
    doc["tasks"]["beam"]["control"]["min_confidence"] = 1.5
    (problem,) = problems_of(write_doc(root, doc))
    assert problem.startswith("tasks.beam.control.min_confidence: 1.5 is greater than the maximum of 1"), problem
    doc["tasks"]["beam"]["control"] = {"min_confidence": 0.8}
    assert problems_of(write_doc(root, doc)) == [
        "tasks.beam.control.min_confidence: no control of this task is enabled, so nothing uses it"]


def test_windows(root: Path) -> None:
    doc = base_doc()
    assert load_descriptor(write_doc(root, doc)).tasks["modulation"].windows == 1
    doc["tasks"]["modulation"]["windows"] = 4
    assert load_descriptor(write_doc(root, doc)).tasks["modulation"].windows == 4
    doc["e2"]["max_frame_bytes"] = 16384
    assert problems_of(write_doc(root, doc)) == [
        "tasks.modulation.windows: 4 windows make frames of 32768 bytes, more than e2.max_frame_bytes (16384): "
        "every one would be rejected"]
    doc["tasks"]["modulation"]["windows"] = 0
    (problem,) = problems_of(write_doc(root, doc))
    assert problem.startswith("tasks.modulation.windows: 0 is less than the minimum of 1"), problem


def test_environment_references(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = base_doc()
    doc["publish"]["redis"] = {"url": "${REDIS_URL:-redis://localhost:6379/0}", "password": "${REDIS_PASSWORD:-}"}
    doc["xapp"]["instance_id"] = "${POD_NAME}"
    path = write_doc(root, doc)
    monkeypatch.delenv("POD_NAME", raising=False)
    monkeypatch.delenv("REDIS_PASSWORD", raising=False)
    assert problems_of(path) == [
        "xapp.instance_id: environment variable POD_NAME is not set (write ${POD_NAME:-default} for a fallback)"
    ]
    monkeypatch.setenv("POD_NAME", "early-exit-xapp-2")
    d = load_descriptor(path)
    assert d.xapp.instance_id == "early-exit-xapp-2"
    assert d.publish.redis_url == "redis://localhost:6379/0" and d.publish.redis_password is None
    monkeypatch.setenv("REDIS_PASSWORD", "s3cret")
    d = load_descriptor(path)
    assert d.publish.redis_password == "s3cret" and "s3cret" not in repr(d)


def test_config_file_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONFIG_FILE", raising=False)
    assert descriptor_path_from_env("descriptors/default.yaml") == Path("descriptors/default.yaml")
    monkeypatch.setenv("CONFIG_FILE", "/opt/xapp/config/descriptor.yaml")
    assert descriptor_path_from_env("descriptors/default.yaml") == Path("/opt/xapp/config/descriptor.yaml")


def test_configmap_symlinks_do_not_move_the_root(root: Path) -> None:
    # kubelet mounts config/descriptor.yaml -> ..data/descriptor.yaml -> ..2026_01_01/descriptor.yaml
    data = root / "config" / "..2026_01_01"
    data.mkdir(parents=True)
    (data / "descriptor.yaml").write_text(yaml.safe_dump(base_doc()))
    os.symlink("..2026_01_01", root / "config" / "..data")
    os.symlink("..data/descriptor.yaml", root / "config" / "descriptor.yaml")
    assert load_descriptor(root / "config" / "descriptor.yaml").root == root


def test_unreadable_and_malformed_files(root: Path) -> None:
    assert problems_of(root / "descriptors" / "absent.yaml")[0].startswith("(file): cannot read")
    bad = root / "descriptors" / "bad.yaml"
    bad.write_text("xapp:\n  name: x\n tasks: [\n")
    (problem,) = problems_of(bad)
    assert problem.startswith("line ") and "not valid YAML" in problem
    bad.write_text("- just\n- a list\n")
    assert problems_of(bad) == ["(top): expected a mapping, got list"]


def test_shipped_descriptors_are_valid() -> None:
    for path in sorted((REPO / "descriptors").glob("*.yaml")):
        load_descriptor(path)
