import hashlib
import shutil
from pathlib import Path

import pytest
import yaml

from xapp.config import load_descriptor
from xapp.model import Head, save_head
from xapp.model.checkpoint import DEFAULT_ENCODER, read_config
from xapp.train.select import (
    Choice,
    ExitScore,
    SelectionError,
    best_under_budget,
    best_under_mean_budget,
    set_block_values,
    set_task_values,
    shallowest_within,
    write_choices,
)

REPO = Path(__file__).resolve().parent.parent
DEFAULT = REPO / "descriptors" / "default.yaml"


def profile(accs, gflops=None):
    gflops = gflops or [0.1 * k for k in range(1, len(accs) + 1)]
    return [ExitScore(k, a, g) for k, (a, g) in enumerate(zip(accs, gflops), start=1)]


def test_shallowest_exit_within_the_tolerance_of_the_best():
    p = profile([0.50, 0.80, 0.896, 0.90, 0.88, 0.87])
    assert shallowest_within(p, 0.5).exit == 3  # 89.6 is within 0.5 points of 90.0
    assert shallowest_within(p, 0.3).exit == 4
    assert shallowest_within(p, 10).exit == 2
    assert shallowest_within(p, 50).exit == 1


def test_tolerance_boundary_counts_as_within_and_ties_go_shallow():
    assert shallowest_within(profile([0.700, 0.895, 0.900]), 0.5).exit == 2  # exactly 0.5 points below
    assert shallowest_within(profile([0.6, 0.9, 0.9, 0.9]), 0.0).exit == 2  # tie for best: shallowest
    assert shallowest_within(list(reversed(profile([0.6, 0.9, 0.9]))), 0.0).exit == 2  # order of input is irrelevant


def test_bad_profiles_and_tolerances_are_refused():
    with pytest.raises(SelectionError, match="empty"):
        shallowest_within([], 0.5)
    with pytest.raises(SelectionError, match="tolerance"):
        shallowest_within(profile([0.5]), -1)
    with pytest.raises(SelectionError, match="twice"):
        shallowest_within([ExitScore(1, 0.5, 0.1), ExitScore(1, 0.6, 0.1)])


def test_budget_mode_picks_the_most_accurate_exit_that_fits():
    p = profile([0.50, 0.80, 0.79, 0.95], [0.1, 0.2, 0.3, 0.4])
    assert best_under_budget(p, 0.35).exit == 2
    assert best_under_budget(p, 0.4).exit == 4
    assert best_under_budget(p, 10).exit == 4
    assert best_under_budget(profile([0.5, 0.8, 0.8], [0.1, 0.2, 0.3]), 1).exit == 2  # tie: cheaper one


def test_mean_budget_spends_depth_where_it_buys_most():
    flat = profile([0.40, 0.41, 0.42], [0.1, 0.2, 0.3])  # gains little from depth
    steep = profile([0.50, 0.80, 0.90], [0.1, 0.2, 0.3])  # gains a lot
    picks = best_under_mean_budget({"flat": flat, "steep": steep}, 0.2)
    assert (picks["flat"].exit, picks["steep"].exit) == (1, 3)  # a per-task budget of 0.2 would give (2, 2)
    picks = best_under_mean_budget({"flat": flat, "steep": steep}, 0.3)
    assert (picks["flat"].exit, picks["steep"].exit) == (3, 3)
    tie = profile([0.5, 0.8, 0.8], [0.1, 0.2, 0.3])
    assert best_under_mean_budget({"t": tie}, 1)["t"].exit == 2  # equal mean accuracy: the cheaper combination


def test_mean_budget_below_the_cheapest_combination_or_too_many_tasks_is_a_clear_error():
    p = profile([0.5, 0.6], [0.1, 0.2])
    with pytest.raises(SelectionError, match=r"no exits fit a mean budget of 0.05 .* costs 0.1"):
        best_under_mean_budget({"a": p, "b": p}, 0.05)
    with pytest.raises(SelectionError, match="--tasks"):
        best_under_mean_budget({"a": p, "b": p, "c": p}, 1, max_combinations=4)


def test_budget_below_every_exit_is_a_clear_error():
    with pytest.raises(SelectionError, match=r"no exit fits a budget of 0.05 GFLOPs/frame: the cheapest, exit 1, costs 0.1"):
        best_under_budget(profile([0.5, 0.8], [0.1, 0.2]), 0.05)


def test_text_edit_changes_only_the_values_and_keeps_comments():
    text = DEFAULT.read_text()
    sha = "ab" * 32
    exit_ = 6 if yaml.safe_load(text)["tasks"]["beam"]["exit"] == 5 else 5  # a value the shipped file lacks
    new = set_task_values(text, "beam", {"exit": exit_})
    old_lines, new_lines = text.splitlines(), new.splitlines()
    assert len(old_lines) == len(new_lines)
    changed = [(a, b) for a, b in zip(old_lines, new_lines) if a != b]
    assert [b.strip() for _, b in changed] == [f"exit: {exit_}"]
    new = set_block_values(new, ("heads",), {"sha256": sha})
    assert [b.strip() for a, b in zip(old_lines, new.splitlines()) if a != b] == [f"sha256: {sha}", f"exit: {exit_}"]
    doc = yaml.safe_load(new)
    assert doc["tasks"]["beam"]["exit"] == exit_ and doc["heads"]["sha256"] == sha
    assert doc["tasks"]["modulation"] == yaml.safe_load(text)["tasks"]["modulation"]
    assert [line for line in new_lines if "#" in line] == [line for line in old_lines if "#" in line]


def test_text_edit_keeps_a_trailing_comment_on_the_edited_line_and_adds_missing_keys():
    text = "a: 1\ntasks:   # the tasks\n  t:\n    exit: 8   # exit here\n    head: h.safetensors\nz: 2  # end\n"
    new = set_task_values(text, "t", {"exit": 2, "head": "x/y.safetensors", "sha256": "12e3"})
    assert "    exit: 2   # exit here\n" in new
    assert new.endswith("z: 2  # end\n")
    doc = yaml.safe_load(new)
    assert doc == {"a": 1, "tasks": {"t": {"exit": 2, "head": "x/y.safetensors", "sha256": "12e3"}}, "z": 2}


def test_text_edit_refuses_what_it_cannot_edit_safely():
    with pytest.raises(SelectionError, match="tasks.nope"):
        set_task_values(DEFAULT.read_text(), "nope", {"exit": 1})
    with pytest.raises(SelectionError, match="block-style"):
        set_task_values("tasks: {t: {exit: 1}}\n", "t", {"exit": 2})
    with pytest.raises(SelectionError, match="flow style"):
        set_task_values("tasks:\n  t: {exit: 1}\n", "t", {"exit": 2})


WIDTH = read_config(DEFAULT_ENCODER).dim  # heads must read the shipped encoder's width to validate


@pytest.fixture
def repo_copy(tmp_path):
    """The default descriptor in its own tree (descriptors/default.yaml) with a heads manifest and
    head files at exits 1, 2, 8 and the descriptor's own for every task it lists."""
    from xapp.data import TASKS
    from xapp.train.head_training import write_manifest

    (tmp_path / "descriptors").mkdir()
    shutil.copy(DEFAULT, tmp_path / "descriptors" / "default.yaml")
    shas, entries = {}, []
    listed = yaml.safe_load(DEFAULT.read_text())["tasks"]
    for task in ("modulation", "interference", "beam", "los"):
        classes = list(TASKS[task].classes)
        for k in sorted({1, 2, 8} | ({listed[task]["exit"]} if task in listed else set())):
            path = tmp_path / "heads" / task / f"exit{k}.safetensors"
            shas[task, k] = save_head(path, Head(WIDTH, len(classes)), {"task": task, "exit": k, "classes": classes})
            entries.append({"task": task, "exit": k, "file": f"{task}/exit{k}.safetensors", "sha256": shas[task, k]})
    write_manifest(tmp_path / "heads" / "manifest.yaml", {"tasks": {}, "heads": entries})
    return tmp_path, shas


def test_write_choices_sets_exits_and_pins_the_manifest(repo_copy):
    root, shas = repo_copy
    path = root / "descriptors" / "default.yaml"
    before = path.read_text()
    choices = {task: Choice(2, root / "heads" / task / "exit2.safetensors", shas[task, 2])
               for task in ("modulation", "interference", "beam", "los")}
    skipped = write_choices(path, choices)
    assert skipped == ["los"]  # not in the descriptor: left out, not added
    descriptor = load_descriptor(path)
    for task in ("modulation", "interference", "beam"):
        spec = descriptor.tasks[task]
        assert (spec.exit, spec.head, spec.sha256) == (2, root / "heads" / task / "exit2.safetensors", shas[task, 2])
    after = path.read_text()
    changed = [new for old, new in zip(before.splitlines(), after.splitlines()) if old != new]
    assert len(before.splitlines()) == len(after.splitlines())
    assert {line.strip().partition(":")[0] for line in changed} <= {"exit", "sha256"}
    expected = yaml.safe_load(before)
    for task in ("modulation", "interference", "beam"):
        expected["tasks"][task]["exit"] = 2
    expected["heads"]["sha256"] = hashlib.sha256((root / "heads" / "manifest.yaml").read_bytes()).hexdigest()
    assert yaml.safe_load(after) == expected


def test_write_choices_keeps_a_custom_head_custom(repo_copy):
    root, shas = repo_copy
    path = root / "descriptors" / "default.yaml"
    path.write_text(set_task_values(path.read_text(), "beam", {"head": "heads/beam/exit8.safetensors", "exit": 8}))
    write_choices(path, {"beam": Choice(2, root / "heads" / "beam" / "exit2.safetensors", shas["beam", 2])})
    beam = yaml.safe_load(path.read_text())["tasks"]["beam"]
    assert (beam["exit"], beam["head"], beam["sha256"]) == (2, "heads/beam/exit2.safetensors", shas["beam", 2])


def test_write_choices_refuses_a_result_that_would_not_validate(repo_copy):
    root, shas = repo_copy
    path = root / "descriptors" / "default.yaml"
    write_choices(path, {})  # pins the copy's manifest
    before = path.read_text()
    listed = yaml.safe_load(before)["tasks"]["beam"]["exit"]
    absent = next(k for k in range(3, 13) if k not in (8, listed))  # the fixture has no head there
    missing = {"beam": Choice(absent, root / "heads" / "beam" / f"exit{absent}.safetensors", "0" * 64)}
    with pytest.raises(SelectionError, match=f"has no beam head at exit {absent}"):
        write_choices(path, missing)
    path.write_text(set_task_values(before, "beam", {"head": "heads/beam/exit2.safetensors"}))
    wrong_sha = {"beam": Choice(2, root / "heads" / "beam" / "exit2.safetensors", "0" * 64)}
    with pytest.raises(SelectionError, match="does not match the pinned 0000"):
        write_choices(path, wrong_sha)
