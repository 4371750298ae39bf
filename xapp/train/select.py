"""Exit selection from per-exit validation accuracy, and its write-back into an xApp descriptor.

Three rules: the shallowest exit whose validation accuracy is within `tolerance` points of the best
exit's; under a per-frame FLOP budget, the most accurate exit that fits (ties go to the shallower
one); or, under a budget for the mean over tasks (the xApp's cost when every task sends as many
frames), the exits that together give the best mean validation accuracy.

The descriptor is edited as text so that its comments and layout survive: only the values of
tasks.<task>.exit change (and head / sha256 for a task that names its own head file; heads.sha256
when the descriptor takes its heads from a manifest), and the edit is checked by parsing before and after.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

EPS = 1e-9  # accuracies are fractions from finite test sets; this only absorbs float rounding


class SelectionError(ValueError):
    """No exit satisfies the rule, or the descriptor cannot be edited safely."""


@dataclass(frozen=True)
class ExitScore:
    exit: int
    val_accuracy: float  # fraction in [0, 1]
    gflops: float  # encoder + head, per frame


def shallowest_within(profile: Sequence[ExitScore], tolerance_points: float = 0.5) -> ExitScore:
    """The shallowest exit whose validation accuracy is within `tolerance_points` (percentage points) of the best."""
    if tolerance_points < 0:
        raise SelectionError(f"tolerance must be >= 0 points, got {tolerance_points}")
    ordered = _ordered(profile)
    best = max(s.val_accuracy for s in ordered)
    return next(s for s in ordered if s.val_accuracy >= best - tolerance_points / 100 - EPS)


def best_under_budget(profile: Sequence[ExitScore], budget_gflops: float) -> ExitScore:
    """The most accurate exit costing at most `budget_gflops` per frame; the shallower one on a tie."""
    ordered = _ordered(profile)
    fits = [s for s in ordered if s.gflops <= budget_gflops + EPS]
    if not fits:
        cheapest = ordered[0]
        raise SelectionError(
            f"no exit fits a budget of {budget_gflops:.4g} GFLOPs/frame: the cheapest, exit {cheapest.exit}, "
            f"costs {cheapest.gflops:.4g}"
        )
    best = max(s.val_accuracy for s in fits)
    return next(s for s in fits if s.val_accuracy >= best - EPS)


def best_under_mean_budget(profiles: Mapping[str, Sequence[ExitScore]], budget_gflops: float,
                           max_combinations: int = 1_000_000) -> dict[str, ExitScore]:
    """One exit per task, together the best mean validation accuracy with mean GFLOPs/frame over the
    tasks at most `budget_gflops`; the cheaper combination on a tie. Exhaustive: a few tasks of 8-16
    exits each are well within `max_combinations`."""
    tasks = list(profiles)
    ordered = [_ordered(profiles[t]) for t in tasks]
    combinations = math.prod(len(o) for o in ordered)
    if combinations > max_combinations:
        raise SelectionError(f"{len(tasks)} tasks give {combinations:,} exit combinations, over {max_combinations:,}; "
                             f"pick fewer tasks with --tasks")
    cheapest = sum(o[0].gflops for o in ordered) / len(tasks)
    if cheapest > budget_gflops + EPS:
        raise SelectionError(f"no exits fit a mean budget of {budget_gflops:.4g} GFLOPs/frame: the cheapest "
                             f"(every task at its first exit) costs {cheapest:.4g}")
    best: tuple[float, float] | None = None
    for combo in itertools.product(*ordered):
        cost = sum(s.gflops for s in combo) / len(combo)
        if cost > budget_gflops + EPS:
            continue
        key = (sum(s.val_accuracy for s in combo) / len(combo), -cost)
        if best is None or key[0] > best[0] + EPS or (abs(key[0] - best[0]) <= EPS and key[1] > best[1]):
            best, pick = key, combo
    return dict(zip(tasks, pick))


def _ordered(profile: Sequence[ExitScore]) -> list[ExitScore]:
    if not profile:
        raise SelectionError("empty exit profile: no heads to choose from")
    exits = [s.exit for s in profile]
    if len(set(exits)) != len(exits):
        raise SelectionError(f"exit profile lists an exit twice: {sorted(exits)}")
    return sorted(profile, key=lambda s: s.exit)


# ---------------------------------------------------------------------------------------------
# Descriptor write-back


@dataclass(frozen=True)
class Choice:
    exit: int
    head: Path  # absolute, or relative to the current directory
    sha256: str


def descriptor_tasks(descriptor: str | os.PathLike[str]) -> list[str]:
    """The task names a descriptor lists (read as plain YAML: selection edits before validation)."""
    try:
        doc = yaml.safe_load(Path(descriptor).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SelectionError(f"{descriptor}: cannot read its tasks ({exc})") from exc
    return list(_listed_tasks(doc))


def _listed_tasks(doc: object) -> Mapping:
    return doc.get("tasks") or {} if isinstance(doc, dict) else {}


def write_choices(descriptor: str | os.PathLike[str], choices: Mapping[str, Choice], strict: bool = False) -> list[str]:
    """Set each chosen task's exit in the descriptor (and its head/sha256 where the task names its
    own head file; heads.sha256 to the named manifest's current digest); returns the tasks it does
    not list (left alone). The file is replaced atomically, and only if the result validates as well
    as the original did (`strict`: only if it validates)."""
    from xapp.config.descriptor import parse_descriptor
    from xapp.config.types import DescriptorError
    from xapp.config.paths import descriptor_root, file_sha256, resolve_path

    path = Path(descriptor)
    text = path.read_text()
    doc = yaml.safe_load(text)
    listed = _listed_tasks(doc)
    root = descriptor_root(path)
    manifest = doc.get("heads", {}).get("manifest") if isinstance(doc.get("heads"), dict) else None
    skipped, new = [], text
    for task, choice in choices.items():
        if task not in listed:
            skipped.append(task)
            continue
        values: dict[str, object] = {"exit": choice.exit}
        if manifest is None or "head" in (listed[task] or {}):
            values |= {"head": os.path.relpath(os.path.abspath(choice.head), root), "sha256": choice.sha256}
        new = set_task_values(new, task, values)
    if isinstance(manifest, str) and resolve_path(root, manifest).is_file():
        new = set_block_values(new, ("heads",), {"sha256": file_sha256(resolve_path(root, manifest))})

    def problems(raw: str) -> set[str]:
        try:
            parse_descriptor(raw.encode(), path)
        except DescriptorError as exc:
            return set(exc.problems)
        return set()

    added = problems(new) - (set() if strict else problems(text))
    if added:
        raise SelectionError(f"{path}: the chosen exits would make the descriptor invalid: " + "; ".join(sorted(added)))
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(new)
    os.replace(tmp, path)  # the running xApp's watcher must never see half a file
    return skipped


_KEY_LINE = re.compile(r"^(?P<lead>[ \t]*(?P<key>[A-Za-z0-9_-]+):)(?P<value>[^#\r\n]*?)(?P<gap>[ \t]*)(?P<comment>#[^\r\n]*)?(?P<eol>\r?\n)?$")


def set_task_values(text: str, task: str, values: Mapping[str, object]) -> str:
    """Replace the values of keys under tasks.<task> (block style) in YAML `text`, keeping everything
    else byte for byte; a missing key is added after the task's last key line."""
    return set_block_values(text, ("tasks", task), values)


def set_block_values(text: str, keys: tuple[str, ...], values: Mapping[str, object]) -> str:
    """set_task_values for the block at `keys`: ("tasks", task), or a top-level section such as ("heads",)."""
    lines = text.splitlines(keepends=True)
    start, end, indent = _task_block(lines, keys[1], text) if keys[0] == "tasks" else _section_block(lines, keys[0])
    found: dict[str, int] = {}
    for i in range(start + 1, end):
        m = _KEY_LINE.match(lines[i])
        if m and _indent(lines[i]) == indent and m["key"] in values:
            found[m["key"]] = i
            lines[i] = _replace_value(m, values[m["key"]])
    last_key_line = max([i for i in range(start + 1, end) if lines[i].strip() and not lines[i].lstrip().startswith("#")],
                        default=start)
    missing = [k for k in values if k not in found]
    newline = "\r\n" if text.endswith("\r\n") else "\n"
    inserted = [f"{' ' * indent}{k}: {_scalar(values[k])}{newline}" for k in missing]
    if inserted and not lines[last_key_line].endswith("\n"):
        lines[last_key_line] += newline
    lines[last_key_line + 1:last_key_line + 1] = inserted
    new = "".join(lines)
    _check_edit(text, new, keys, values)
    return new


def _section_block(lines: list[str], section: str) -> tuple[int, int, int]:
    """(line of top-level `section:`, first line after its block, indent of its keys)."""
    start = next((i for i, line in enumerate(lines) if re.match(rf"^{re.escape(section)}:[ \t]*(#.*)?$", line.rstrip("\r\n"))), None)
    if start is None:
        raise SelectionError(f"descriptor has no block-style top-level `{section}:` mapping")
    end = start + 1
    while end < len(lines) and (not _is_content(lines[end]) or _indent(lines[end]) > 0):
        end += 1
    while end > start + 1 and not _is_content(lines[end - 1]):
        end -= 1
    children = [_indent(lines[i]) for i in range(start + 1, end) if _is_content(lines[i])]
    if not children:
        raise SelectionError(f"{section} has no block-style keys to edit")
    return start, end, min(children)


def _task_block(lines: list[str], task: str, text: str) -> tuple[int, int, int]:
    """(line of `task:`, first line after its block, indent of its keys)."""
    top = next((i for i, line in enumerate(lines) if re.match(r"^tasks:[ \t]*(#.*)?$", line.rstrip("\r\n"))), None)
    if top is None:
        raise SelectionError("descriptor has no block-style top-level `tasks:` mapping")
    header = re.compile(rf"^(?P<indent>[ \t]+){re.escape(task)}:[ \t]*(#.*)?$")
    start = task_indent = None
    for i in range(top + 1, len(lines)):
        line = lines[i].rstrip("\r\n")
        if _is_content(line) and _indent(line) == 0:
            break
        m = header.match(line)
        if m and (task_indent is None or len(m["indent"]) == task_indent):
            start, task_indent = i, len(m["indent"])
            break
    if start is None:
        raise SelectionError(f"descriptor lists tasks.{task} in a form this editor does not handle (flow style?)")
    end = start + 1
    while end < len(lines) and (not _is_content(lines[end]) or _indent(lines[end]) > task_indent):
        end += 1
    while end > start + 1 and not _is_content(lines[end - 1]):
        end -= 1  # trailing blank lines and comments belong to what follows
    children = [_indent(lines[i]) for i in range(start + 1, end) if _is_content(lines[i])]
    if not children:
        raise SelectionError(f"tasks.{task} has no block-style keys to edit")
    return start, end, min(children)


def _is_content(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _scalar(value: object) -> str:
    """A YAML flow scalar (quoted only when plain text would be read back as something else)."""
    return yaml.safe_dump([value], default_flow_style=True, width=1 << 16).strip()[1:-1]


def _replace_value(m: re.Match, value: object) -> str:
    new = f"{m['lead']} {_scalar(value)}"
    if m["comment"]:
        column = len(m["lead"]) + len(m["value"]) + len(m["gap"])  # keep comments aligned when possible
        new = new.ljust(column) if len(new) < column else new + " "
        new += m["comment"]
    return new + (m["eol"] or "")


def _check_edit(old: str, new: str, keys: tuple[str, ...], values: Mapping[str, object]) -> None:
    where = ".".join(keys)
    try:
        before, after = yaml.safe_load(old), yaml.safe_load(new)
    except yaml.YAMLError as exc:
        raise SelectionError(f"editing {where} produced invalid YAML ({exc})") from exc
    block = before
    for key in keys:
        block = block[key]
    block.update(values)
    if before != after:
        raise SelectionError(f"could not edit {where} without changing other parts of the descriptor")
