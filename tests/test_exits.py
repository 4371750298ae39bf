"""One-line exit tuning: heads come from the manifest by exit; `xapp descriptor validate` and the
xApp's loader refuse the same heads with the same message; `xapp exits` / `xapp exits set`."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
import torch
import yaml

from xapp.engine.build import build_table
from xapp.cli import main
from xapp.config import DescriptorError, PolicySpec, TaskSettings, load_descriptor
from xapp.config.types import ControlSpec
from xapp.data import TASKS
from xapp.engine.runner import PlanError
from xapp.model import DEFAULT_ENCODER, Head, load_encoder, save_head
from xapp.model.checkpoint import read_config

REPO = Path(__file__).resolve().parents[1]
BEAM_CLASSES = list(TASKS["beam"].classes)
SHIPPED = read_config(DEFAULT_ENCODER)  # the shipped encoder's width and depth


@pytest.fixture(scope="module")
def encoder():
    return load_encoder()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """descriptors/default.yaml next to the shipped heads (linked), as in the repository."""
    (tmp_path / "descriptors").mkdir()
    (tmp_path / "descriptors" / "default.yaml").write_text((REPO / "descriptors" / "default.yaml").read_text())
    (tmp_path / "heads").symlink_to(REPO / "heads")
    (tmp_path / "custom").mkdir()
    return tmp_path


def beam_head(tree: Path, name: str, dim: int = SHIPPED.dim, classes: list[str] = BEAM_CLASSES) -> str:
    save_head(tree / "custom" / name, Head(dim, len(classes)), {"task": "beam", "exit": 2, "classes": classes})
    return f"custom/{name}"


def shipped_sha(task: str, exit_: int) -> str:
    return hashlib.sha256((REPO / "heads" / task / f"exit{exit_}.safetensors").read_bytes()).hexdigest()


# (name, edit of tasks.beam, expected message tail); every head here is refused by both checkers.
BAD = [
    ("head trained at another exit", lambda t: {"exit": 4, "head": "heads/beam/exit2.safetensors"},
     "was trained at exit 2, configured at exit 4"),
    ("head of another task", lambda t: {"exit": 2, "head": "heads/modulation/exit2.safetensors"},
     "is a head for task 'modulation'"),
    ("sha256 pin does not match", lambda t: {"exit": 2, "head": "heads/beam/exit2.safetensors", "sha256": "0" * 64},
     "does not match the pinned " + "0" * 64),
    ("missing file", lambda t: {"exit": 2, "head": "heads/beam/exit20.safetensors"}, "no such weights file"),
    ("other classes", lambda t: {"exit": 2, "head": beam_head(t, "classes.safetensors", classes=BEAM_CLASSES[::-1])},
     "expected ('beam00'"),
    ("other encoder width", lambda t: {"exit": 2, "head": beam_head(t, "narrow.safetensors", dim=64)},
     f"reads dim 64, the encoder has dim {SHIPPED.dim}"),
    ("not a head file", lambda t: {"exit": 2, "head": "descriptors/default.yaml"}, "not a readable safetensors file"),
]


@pytest.mark.parametrize("name, edit, tail", BAD, ids=[b[0] for b in BAD])
def test_validate_and_the_xapp_refuse_the_same_heads_with_the_same_message(tree, encoder, capsys, name, edit, tail):
    path = tree / "descriptors" / "default.yaml"
    good = load_descriptor(path)
    doc = yaml.safe_load(path.read_text())
    bad = edit(tree)
    doc["tasks"]["beam"].update(bad)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))

    assert main(["descriptor", "validate", str(path)]) == 2
    (line,) = [x.strip() for x in capsys.readouterr().err.splitlines() if x.strip().startswith("- tasks.beam")]
    assert line.startswith("- tasks.beam.head: ") and tail in line, line
    validate_message = line.removeprefix("- tasks.beam.head: ")

    # The xApp's loader on the same head, bypassing validation: what a running xApp would load.
    head = (tree / bad["head"]).absolute()
    spec = TaskSettings("beam", True, bad["exit"], head, bad.get("sha256"), PolicySpec("fixed"), ControlSpec(beam_switch=True, interference_mitigation=False))
    unvalidated = dataclasses.replace(good, tasks={**good.tasks, "beam": spec})
    with pytest.raises(PlanError) as info:
        build_table(unvalidated, encoder)
    assert str(info.value) == f"task beam: {validate_message}"


def test_one_line_moves_the_exit_and_the_manifest_supplies_head_and_sha256(tree):
    path = tree / "descriptors" / "default.yaml"
    before = (REPO / "descriptors" / "default.yaml").read_text().splitlines()
    shipped_exit = yaml.safe_load(chr(10).join(before))["tasks"]["beam"]["exit"]
    new_exit = 5 if shipped_exit != 5 else 4
    assert main(["exits", "set", "beam", str(new_exit), "--descriptor", str(path)]) == 0
    after = path.read_text().splitlines()
    assert [(a.strip(), b.strip()) for a, b in zip(before, after) if a != b] == [(f"exit: {shipped_exit}", f"exit: {new_exit}")]
    beam = load_descriptor(path).tasks["beam"]
    assert (beam.exit, beam.head, beam.sha256) == (new_exit, tree / "heads" / "beam" / f"exit{new_exit}.safetensors",
                                                   shipped_sha("beam", new_exit))


def test_exits_set_refuses_what_would_not_validate_and_leaves_the_file(tree, capsys):
    path = tree / "descriptors" / "default.yaml"
    before = path.read_text()
    beyond = SHIPPED.depth + 1
    assert main(["exits", "set", "beam", str(beyond), "--descriptor", str(path)]) == 2
    exits = ", ".join(str(k) for k in range(1, beyond))
    assert f"has no beam head at exit {beyond} (it has exits {exits})" in capsys.readouterr().err
    assert main(["exits", "set", "weather", "1", "--descriptor", str(path)]) == 2
    assert "has no task 'weather'" in capsys.readouterr().err
    assert path.read_text() == before


def test_manifest_is_pinned_and_its_heads_are_checked(tree, tmp_path):
    path = tree / "descriptors" / "default.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["heads"]["sha256"] = "1" * 64
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(DescriptorError) as info:
        load_descriptor(path)
    assert info.value.problems == [f"heads.sha256: {tree / 'heads' / 'manifest.yaml'} has sha256 "
                                   f"{hashlib.sha256((REPO / 'heads' / 'manifest.yaml').read_bytes()).hexdigest()}, "
                                   f"the descriptor pins {'1' * 64}"]
    del doc["heads"]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(DescriptorError) as info:
        load_descriptor(path)
    assert all("no head file: name one here, or a heads manifest under heads.manifest" in p for p in info.value.problems)
    assert len(info.value.problems) == len(doc["tasks"])


def test_exits_shows_cost_and_accuracy_per_exit_and_marks_the_descriptors(tree, capsys):
    path = tree / "descriptors" / "default.yaml"
    plot = tree / "exits.png"
    threads = torch.get_num_threads()
    assert main(["exits", "--descriptor", str(path), "--task", "beam", "--batch", "2", "--repeats", "1",
                 "--threads", "1", "--json", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    report = json.loads(out[: out.rindex("}") + 1])
    rows = report["exits"]
    assert [r["exit"] for r in rows] == list(range(1, SHIPPED.depth + 1)) and {r["task"] for r in rows} == {"beam"}
    chosen_exit = load_descriptor(path).tasks["beam"].exit
    assert [r["exit"] for r in rows if r["chosen"]] == [chosen_exit]
    manifest = yaml.safe_load((REPO / "heads" / "manifest.yaml").read_text())
    val = {h["exit"]: h["val_accuracy"] for h in manifest["heads"] if h["task"] == "beam"}
    assert [r["val_accuracy"] for r in rows] == [val[k] for k in range(1, SHIPPED.depth + 1)]
    side = {h["exit"]: h.get("side") for h in manifest["heads"] if h["task"] == "beam"}
    assert [r["side"] for r in rows] == [side[k] for k in range(1, SHIPPED.depth + 1)]
    gflops = [r["gflops"] for r in rows]
    assert gflops == sorted(gflops) and all(r["latency_ms"] > 0 for r in rows)
    assert plot.stat().st_size > 10_000
    torch.set_num_threads(threads)  # the command set this process's torch threads


def test_xapp_home_points_the_command_line_at_an_operators_tree(tree, monkeypatch, tmp_path):
    monkeypatch.setenv("XAPP_HOME", str(tree))
    monkeypatch.delenv("CONFIG_FILE", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["exits", "set", "beam", "5"]) == 0  # no --descriptor: $XAPP_HOME/descriptors/default.yaml
    assert yaml.safe_load((tree / "descriptors" / "default.yaml").read_text())["tasks"]["beam"]["exit"] == 5
    assert load_descriptor(tree / "descriptors" / "default.yaml").tasks["beam"].head == tree / "heads" / "beam" / "exit5.safetensors"
