"""Which runtime and precision serve the trunk: the descriptor's `encoder.runtime` and
`encoder.precision`, either of which may be `auto`.

`auto` is decided by measurement, on this machine, when the xApp starts: every setting the values allow
here (torch or ONNX Runtime; fp32, int8, bf16 where the CPU has it) serves the descriptor's tasks at
their exits and batch size on the same frames (`compare`), and the fastest whose decisions agree with
torch fp32 on at least `encoder.min_agreement` of such frames, with 95 % confidence from this sample,
is served (`choose`; torch fp32 itself when none does). The frames come from the xApp's own generators
with a fixed seed, so on one machine the agreements are the same at every start and only the timings
vary.

The choice is cached by everything it depends on (this CPU, the torch and ONNX Runtime versions, the
code that computes the trunk in each setting, the encoder, the tasks' heads and exits, the batch size,
the candidates and the agreement asked for) in `$XAPP_CACHE_DIR/engine-choice.json` (else
~/.cache/xapp), so a restart on the same machine serves at once and the same way; a changed machine or
plan measures again.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import math
import os
import platform
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from xapp.config.paths import file_sha256
from xapp.config.types import Descriptor
from xapp.engine.precision import PRECISIONS, RUNTIMES, cpu_has_bf16
from xapp.engine.runner import EarlyExitEngine, TaskTable
from xapp.model import Encoder
from xapp.ops.metrics import Metrics
from xapp.vocab import Request

log = logging.getLogger(__name__)

AUTO = "auto"
# The frames of `xapp bench --precision --frames 384` (its default seed, 384 per task): the start-up
# choice and the bench's table read the same agreements. One pass, batch by batch in turns; with the
# default's three tasks, 1,152 frames put one frame at 0.09 points of agreement.
STARTUP_FRAMES_PER_TASK = 384
STARTUP_SEED = 1234
STARTUP_REPEATS = 1
AGREEMENT_Z = 1.645  # one-sided 95 %
CACHE_FILE = "engine-choice.json"


@dataclass(frozen=True, order=True)
class Setting:
    runtime: str  # torch | onnxruntime
    precision: str  # fp32 | int8 | bf16

    def __str__(self) -> str:
        return f"{self.runtime} {self.precision}"


REFERENCE = Setting("torch", "fp32")


@dataclass(frozen=True)
class Choice:
    """The setting served, why (`auto` measured or read from the cache, or as configured) and, when
    measured, what each candidate did (`compare`'s result)."""

    setting: Setting
    how: str  # configured | only candidate | measured | cached
    measured: dict | None = None


def onnxruntime_installed() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))


def candidates(runtime: str, precision: str, device: torch.device) -> list[Setting]:
    """The settings `runtime` and `precision` (each a value or `auto`) allow on `device`, in a fixed
    order; with neither `auto`, that one setting, whether or not it runs here (the engine says why not)."""
    if runtime != AUTO and precision != AUTO:
        return [Setting(runtime, precision)]
    runtimes = RUNTIMES if runtime == AUTO else (runtime,)
    precisions = PRECISIONS if precision == AUTO else (precision,)
    return [s for r in runtimes for p in precisions if runs_here(s := Setting(r, p), device)]


def runs_here(setting: Setting, device: torch.device) -> bool:
    if device.type != "cpu":
        return setting == REFERENCE  # on CUDA the engine autocasts to bf16 whatever is set
    if setting.runtime == "onnxruntime":
        return setting.precision != "bf16" and onnxruntime_installed()
    return setting.precision != "bf16" or cpu_has_bf16()


Serve = Callable[[list[Request]], dict[tuple[str, int], int]]  # frames -> {(task, seq): class index}


def engine_serve(encoder: Encoder, table: TaskTable, setting: Setting) -> Serve:
    engine = EarlyExitEngine(encoder, Metrics(), setting.precision, runtime=setting.runtime)

    def serve(batch: list[Request]) -> dict[tuple[str, int], int]:
        out: dict[tuple[str, int], int] = {}

        def keep(decisions) -> None:
            out.update(zip(zip(decisions.task, decisions.seq), decisions.class_index))

        engine.run(batch, table, keep)
        return out

    return serve


def compare(encoder: Encoder, table: TaskTable, frames: list[Request], max_batch: int, settings: Sequence[Setting],
            repeats: int = 3) -> dict:
    """Each setting (and torch fp32, the reference) on the same frames in batches of `max_batch`, taking
    turns batch by batch in every repeat so that a machine whose load changes slows all alike: frames/s,
    speed-up over the reference (median of the per-repeat ratios), agreement of its decisions with the
    reference's (same class for the same frame) and accuracy per task against the frames' labels. A
    setting whose engine cannot be built here is left out, with why, under "failed"."""
    truth = {(r.task, r.seq): r.label for r in frames}
    chunks = [frames[i : i + max_batch] for i in range(0, len(frames), max_batch)]
    serves = {str(REFERENCE): engine_serve(encoder, table, REFERENCE)}
    failed = {}
    for setting in (s for s in settings if s != REFERENCE):
        try:
            serves[str(setting)] = engine_serve(encoder, table, setting)
        except Exception as exc:  # a setting that cannot be built here is left out, never the start-up's end
            failed[str(setting)] = f"{type(exc).__name__}: {exc}"
            log.warning("%s cannot serve here: %s", setting, exc, extra={"setting": str(setting)})
    for serve in serves.values():
        serve(chunks[0])  # warm-up
    seconds: dict[str, list[float]] = {name: [] for name in serves}
    decided: dict[str, dict[tuple[str, int], int]] = {name: {} for name in serves}
    for _ in range(repeats):
        spent = dict.fromkeys(serves, 0.0)
        for chunk in chunks:
            for name, serve in serves.items():
                start = time.perf_counter()
                decided[name].update(serve(chunk))
                spent[name] += time.perf_counter() - start
        for name, s in spent.items():
            seconds[name].append(s)
    reference = decided[str(REFERENCE)]
    out = {}
    for name in serves:
        got = decided[name]
        if got.keys() != reference.keys():
            raise RuntimeError(f"{name} decided {len(got)} frames, {REFERENCE} {len(reference)}")
        per_task = defaultdict(list)
        for (task, seq), c in got.items():
            per_task[task].append(table[task].classes[c] == truth[(task, seq)])
        out[name] = {
            "frames_per_s": len(frames) / statistics.median(seconds[name]),
            "speedup_vs_fp32": statistics.median(a / b for a, b in zip(seconds[str(REFERENCE)], seconds[name])),
            "agreement_with_fp32": float(np.mean([got[key] == c for key, c in reference.items()])),
            "accuracy": {task: float(np.mean(hits)) for task, hits in sorted(per_task.items())},
        }
    return {"frames": len(frames), "max_batch": max_batch, "repeats": repeats,
            "exits": {t: p.exit for t, p in table.items()}, "variants": out, "failed": failed}


def choose(result: dict, min_agreement: float, allowed: Sequence[Setting] | None = None) -> Setting:
    """The fastest of `allowed` (default: every variant of `compare`'s result) whose decisions agree
    with torch fp32 on at least `min_agreement` of frames like these with 95 % confidence (the lower
    bound of `agreement_bound`); torch fp32 when none does."""
    names = {str(s): s for s in allowed} if allowed is not None else {
        name: Setting(*name.split()) for name in result["variants"]}
    agreeing = {name: v for name, v in result["variants"].items()
                if name in names and agreement_bound(v["agreement_with_fp32"], result["frames"]) >= min_agreement}
    if not agreeing:
        return REFERENCE
    return names[max(agreeing, key=lambda n: agreeing[n]["frames_per_s"])]


def agreement_bound(agreement: float, frames: int, z: float = AGREEMENT_Z) -> float:
    """One-sided lower bound of the agreement a setting would show on many more frames, from its
    agreement on `frames` (Wilson's score interval): on 1,152 frames a measured 99.22 % bounds it at
    98.66 %, 99.83 % at 99.48 %, and 100 % at 99.77 %. A setting whose agreement sits at the threshold
    would otherwise be chosen on one sample and not on the next."""
    n, z2 = frames, z * z
    centre = agreement + z2 / (2 * n)
    spread = z * math.sqrt(agreement * (1 - agreement) / n + z2 / (4 * n * n))
    return (centre - spread) / (1 + z2 / n)


def sample_requests(tasks: Sequence[str], n: int, seed: int = STARTUP_SEED,
                    shapes: dict[str, tuple[int, int]] | None = None,
                    splits: dict[str, tuple[int, int]] | None = None) -> list[Request]:
    """`n` labelled frames per task from the generators (of `shapes[task]` where given: a longer
    capture), interleaved round-robin as the simulated nodes send them; seeded `seed` plus the task's
    position, or the first `n` of the split (size, seed) in `splits[task]` where given."""
    from xapp.data import generate

    per_task = []
    for i, task in enumerate(tasks):
        options = {"samples": shapes[task][1]} if shapes and task in shapes else {}
        size, task_seed = splits[task] if splits and task in splits else (n, seed + i)
        data = generate(task, size, task_seed, **options)
        n = min(n, size)
        per_task.append([
            Request("bench", task, data.x[j], j, "cell0", 0, 0.0, float("inf"), data.classes[int(data.y[j])])
            for j in range(n)
        ])
    return [reqs[j] for j in range(n) for reqs in per_task]


def resolve(descriptor: Descriptor, encoder: Encoder, table: TaskTable, cache_dir: Path | None = None) -> Choice:
    """The setting to serve `descriptor`'s plan with: as configured, or with `auto` the cached or
    freshly measured choice (measuring takes a few seconds on a CPU; the cache is then written)."""
    spec = descriptor.encoder
    device = next(encoder.parameters()).device
    allowed = candidates(spec.runtime, spec.precision, device)
    if spec.runtime != AUTO and spec.precision != AUTO:
        return Choice(allowed[0], "configured")
    if not allowed:  # e.g. bf16 on a CPU without it: the engine refuses it with the reason
        return Choice(Setting("torch" if spec.runtime == AUTO else spec.runtime,
                              "fp32" if spec.precision == AUTO else spec.precision), "configured")
    if len(allowed) == 1:
        return Choice(allowed[0], "only candidate")
    key = choice_key(descriptor, allowed)
    path = (cache_dir or default_cache_dir()) / CACHE_FILE
    cached = read_cache(path).get(key)
    if isinstance(cached, dict) and (setting := Setting(cached.get("runtime"), cached.get("precision"))) in allowed:
        return Choice(setting, "cached", cached.get("measured"))
    frames = sample_requests(list(table), STARTUP_FRAMES_PER_TASK, STARTUP_SEED,
                             {t: p.capture_shape for t, p in table.items() if p.capture_shape})
    result = compare(encoder, table, frames, descriptor.batching.max_batch, allowed, STARTUP_REPEATS)
    setting = choose(result, spec.min_agreement, allowed)
    write_cache(path, key, {**asdict(setting), "measured": result})
    return Choice(setting, "measured", result)


def default_cache_dir() -> Path:
    return Path(os.environ.get("XAPP_CACHE_DIR") or Path.home() / ".cache" / "xapp")


def choice_key(descriptor: Descriptor, allowed: Sequence[Setting]) -> str:
    """A digest of everything an `auto` choice depends on."""
    plan = {name: [spec.exit, spec.sha256, spec.windows, spec.policy.kind, spec.policy.threshold,
                   [(e.exit, e.sha256) for e in spec.policy.exits]]
            for name, spec in sorted(descriptor.enabled_tasks.items())}
    facts = {
        "cpu": cpu_identity(),
        "threads": torch.get_num_threads(),
        "versions": {name: _version(name) for name in ("torch", "onnxruntime", "numpy")},
        "code": kernel_code_digest(),
        "encoder": file_sha256(descriptor.encoder.checkpoint),
        "plan": plan,
        "max_batch": descriptor.batching.max_batch,
        "min_agreement": [descriptor.encoder.min_agreement, "wilson lower bound", AGREEMENT_Z],
        "candidates": [str(s) for s in allowed],
        "frames": [STARTUP_FRAMES_PER_TASK, STARTUP_SEED],
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()


def kernel_code_digest() -> str:
    """A digest of the source that decides how each setting computes the trunk (the blocks, the
    precisions, the ONNX Runtime export): a change there can change both speed and decisions."""
    from xapp.engine import onnx_blocks, precision
    from xapp.model import block

    digest = hashlib.sha256()
    for module in (block, precision, onnx_blocks):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def cpu_identity() -> str:
    """This CPU's model and feature flags (what decides which kernels run), and its core count."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        info = ""
    lines = [line for line in info.splitlines() if line.startswith(("model name", "flags"))][:2]
    return f"{platform.machine()} {os.cpu_count()} {hashlib.sha256(''.join(lines).encode()).hexdigest()[:16]}"


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # absent or unreadable: measure again
    return data if isinstance(data, dict) else {}


def write_cache(path: Path, key: str, record: dict) -> None:
    """Best effort: a cache that cannot be written costs the next start a measurement, nothing else."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = read_cache(path) | {key: record}
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(path)
    except OSError as exc:
        log.warning("engine choice not cached: %s", exc, extra={"path": str(path)})
