"""`xapp report`: docs/results.md, docs/results.json and PNG plots, from the shipped heads.

Per-exit accuracies come from heads/manifest.yaml (written by `xapp heads train`); the dynamic-exit
curves are re-measured here by serving each task's test frames through the engine; the three claims
are computed from those numbers. Nothing in the report is typed by hand.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from xapp.data import generate
from xapp.model import Encoder, load_head
from xapp.model.policies import KINDS as POLICY_KINDS
from xapp.model.side import head_reads
from xapp.train.baselines import compare
from xapp.train.baselines.frames import CROSSCHECK_SEED
from xapp.train.baselines.run import BASELINE_TASKS
from xapp.train.dynamic import accuracy_at, sweep_size, sweep_task
from xapp.config.manifest import task_heads
from xapp.train.head_training import SNR_BIN_DB, commands
from xapp.train.select import ExitScore, shallowest_within

UNSEEN = ("fingerprint", "los")
POLICIES = tuple(kind for kind in POLICY_KINDS if kind != "fixed")  # the dynamic ones
PAPER_SAVING = 93.0
KEPT_SECTIONS = (  # written by hand; they survive regeneration
    "Heads retrained on the broad data, previous encoder",
    "The self-supervised trunk beside the labelled stage",
)


def profile(entries: list[dict]) -> list[ExitScore]:
    return [ExitScore(h["exit"], h["val_accuracy"], h["gflops"]) for h in entries]


def build_results(manifest: dict, manifest_path: str | Path, encoder: Encoder, frames: int, batch: int,
                  tolerance: float, progress: Callable[[int], object] | None = None,
                  baselines: str | Path | None = None) -> dict:
    """Every number the report shows. `progress(total)` returns a tqdm-like bar for the engine runs;
    `baselines` is the JSON cached by `xapp baselines` (None: no comparison section)."""
    tasks = list(manifest["tasks"])
    results = {"manifest": str(manifest_path), "command": manifest["command"], "encoder": manifest["encoder"],
               "settings": manifest["settings"], "tolerance_points": tolerance, "dynamic_frames": frames,
               "dynamic_batch": batch, "depth": encoder.cfg.depth, "tasks": {}}
    depth = encoder.cfg.depth
    bar = progress(len(tasks) * sweep_size(depth)) if progress else None
    for task in tasks:
        entries = task_heads(manifest, task, manifest_path)
        info = manifest["tasks"][task]
        heads = {h["exit"]: load_head(h["path"], h["sha256"])[0] for h in entries}
        test = info["splits"]["test"]
        data = generate(task, test["n"], test["seed"])
        n = min(frames, len(data.y))
        runs = sweep_task(encoder, task, info["classes"], heads, data.x[:n], data.y[:n], batch, bar)
        chosen = shallowest_within(profile(entries), tolerance)
        results["tasks"][task] = {
            "classes": info["classes"],
            "exits": [{**{k: h[k] for k in ("exit", "gflops", "val_accuracy", "test_accuracy")},
                       "side": h.get("side"), "train_frames": h.get("settings", manifest["settings"])["train"],
                       **trunk_only(h)} for h in entries],
            "chosen_exit": chosen.exit,
            "test_accuracy_by_snr": {h["exit"]: h["test_accuracy_by_snr"] for h in entries if "test_accuracy_by_snr" in h},
            "dynamic": {kind: [r.summary() for r in rs] for kind, rs in runs.items()},
        }
    if bar is not None:
        bar.close()
    results["claims"] = claims(results, depth)
    if baselines is not None:
        results |= {"baselines_file": str(baselines), "baselines": compare.read_baselines(baselines),
                    "crosscheck_seed": CROSSCHECK_SEED, "comparison": {}}
        for task in (t for t in BASELINE_TASKS if t in tasks):
            heads = {h["exit"]: load_head(h["path"], h["sha256"])[0] for h in task_heads(manifest, task, manifest_path)}
            results["comparison"][task] = compare.heads_on_both_sets(encoder, heads, manifest, task)
    return results


def claims(results: dict, depth: int) -> dict:
    tasks = results["tasks"]
    a = []
    for task, r in tasks.items():
        by_exit = {e["exit"]: e for e in r["exits"]}
        c, last = by_exit[r["chosen_exit"]], by_exit[depth]
        a.append({"task": task, "exit": c["exit"], "gflops": c["gflops"], "full_gflops": last["gflops"],
                  "saved_percent": 100 * (1 - c["gflops"] / last["gflops"]),
                  "test_accuracy": c["test_accuracy"], "full_test_accuracy": last["test_accuracy"]})
    first = next(iter(tasks.values()))["exits"]
    ceiling = 100 * (1 - first[0]["gflops"] / first[-1]["gflops"])
    b = []
    for task in (t for t in UNSEEN if t in tasks):
        # the trunk's own layers compared: heads reading the trunk alone, whatever side heads were kept
        exits = [{"exit": e["exit"], "val": e["trunk_only_val_accuracy"], "test": e["trunk_only_test_accuracy"],
                  "frames": e["train_frames"]} for e in tasks[task]["exits"]]
        inner = [e for e in exits if e["exit"] < depth and e["val"] is not None]
        best = max(inner, key=lambda e: (e["val"], -e["exit"]))
        last = exits[-1]
        b.append({"task": task, "best_exit": best["exit"], "best_val": best["val"],
                  "best_test": best["test"], "last_val": last["val"],
                  "last_test": last["test"], "holds": best["test"] > last["test"],
                  "best_train_frames": best["frames"], "last_train_frames": last["frames"]})
    c = []
    for task, r in tasks.items():
        fixed = next(f for f in r["dynamic"]["fixed"] if f["setting"] == r["chosen_exit"])
        row = {"task": task, "exit": r["chosen_exit"], "gflops": fixed["mean_gflops"], "accuracy": fixed["accuracy"],
               "ms_per_frame": fixed["ms_per_frame"], "policies": {}}
        for kind in POLICIES:
            points = r["dynamic"][kind]
            acc = accuracy_at([(p["mean_gflops"], p["accuracy"]) for p in points], fixed["mean_gflops"])
            nearest = min(points, key=lambda p: abs(p["mean_gflops"] - fixed["mean_gflops"]))
            row["policies"][kind] = {"accuracy": acc, "cheapest_gflops": min(p["mean_gflops"] for p in points),
                                     "nearest_ms_per_frame": nearest["ms_per_frame"],
                                     "nearest_gflops": nearest["mean_gflops"]}
        fixed_points = [(f["mean_gflops"], f["accuracy"]) for f in r["dynamic"]["fixed"]]
        row["curve"] = {}
        for kind in POLICIES:
            # The other direction: each dynamic operating point against the fixed-exit curve at its cost
            # (splitting traffic between two fixed exits realises any point on the segment between them).
            gaps = [accuracy_at(fixed_points, p["mean_gflops"]) - p["accuracy"] for p in r["dynamic"][kind]]
            row["curve"][kind] = {"points": len(gaps), "fixed_at_least_as_good": sum(g >= -1e-12 for g in gaps),
                                  "mean_gap": float(np.mean(gaps)), "min_gap": min(gaps)}
        c.append(row)
    return {"a": a, "a_ceiling_percent": ceiling, "b": b, "c": c}


# ---------------------------------------------------------------------------------------------
# Markdown


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def render_markdown(results: dict, plots: list[str]) -> str:
    """results.md: the three claims, the baselines comparison, then per-task tables."""
    out = _header(results) + _claim_flops_saved(results) + _claim_unseen_tasks(results) + _claim_fixed_vs_dynamic(results)
    if "comparison" in results:
        out += compare.render(results)
    out += _exit_tables(results, plots) + _snr_plots(results, plots) + _dynamic_tables(results, plots)
    return "\n".join(out)


def _header(results: dict) -> list[str]:
    return ["# Results", "",
            "Generated by `xapp report` from `heads/manifest.yaml` (heads trained by the commands below, in order)",
            "and a re-measurement of the dynamic-exit baselines through the serving engine. Do not edit by hand.", "",
            "- heads: " + ", then ".join(f"`{c}`" for c in commands(results)),
            f"- encoder: `{results['encoder']['file']}` (sha256 `{results['encoder']['sha256'][:16]}…`)",
            f"- exit rule: shallowest exit within {results['tolerance_points']} points of the best validation accuracy",
            f"- dynamic baselines: first {results['dynamic_frames']} test frames per task, engine batches of "
            f"{results['dynamic_batch']}, wall time measured on this machine", "",
            "## Claims", ""]


def _claim_flops_saved(results: dict) -> list[str]:
    """Claim (a): FLOPs saved at each task's chosen exit against full depth."""
    rows = results["claims"]["a"]
    out = ["### (a) FLOPs saved at the chosen exit vs full depth (paper: up to 93 %)", "",
           "| task | chosen exit | GFLOPs/frame | full depth | saved | test acc (chosen) | test acc (full) |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['task']} | {r['exit']} | {r['gflops']:.4f} | {r['full_gflops']:.4f} | "
                   f"{r['saved_percent']:.1f} % | {pct(r['test_accuracy'])} | {pct(r['full_test_accuracy'])} |")
    saved = sorted(r["saved_percent"] for r in rows)
    drop = max(100 * (r["full_test_accuracy"] - r["test_accuracy"]) for r in rows)
    reach = (f"reaches the paper's {PAPER_SAVING:.0f} %" if saved[-1] >= PAPER_SAVING else
             f"does not reach the paper's {PAPER_SAVING:.0f} %: with {results['depth']} blocks even exit 1 saves only "
             f"{results['claims']['a_ceiling_percent']:.1f} %")
    return out + ["", f"The chosen exits save {saved[0]:.1f}–{saved[-1]:.1f} % of the full-depth FLOPs; the largest saving "
                  f"{reach}. The largest test-accuracy cost of a chosen exit against the last layer is {drop:+.1f} points "
                  "(negative: the chosen exit is more accurate).", ""]


def _claim_unseen_tasks(results: dict) -> list[str]:
    """Claim (b): on unseen tasks an intermediate exit beats the last layer."""
    rows = results["claims"]["b"]
    out = ["### (b) Unseen tasks: best intermediate exit vs last layer", "",
           "Heads that read the trunk alone at every exit (the trunk's layers compared, whatever side features "
           "the kept heads read).", "",
           "| task | best intermediate exit (by val) | its test acc | last-layer test acc | training frames (exit / last) "
           "| holds |", "|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['task']} | {r['best_exit']} | {pct(r['best_test'])} | {pct(r['last_test'])} | "
                   f"{r['best_train_frames']:,} / {r['last_train_frames']:,} | {'yes' if r['holds'] else 'no'} |")
    if not rows:
        out.append("| (no unseen task in the manifest) | | | | | |")
    else:
        gaps = ", ".join(f"{r['task']} {100 * (r['best_test'] - r['last_test']):+.1f} points" for r in rows)
        out += ["", f"An intermediate exit beats the last layer on {sum(r['holds'] for r in rows)} of {len(rows)} "
                f"unseen tasks (test accuracy, exit picked on validation): {gaps}."]
        unequal = [r["task"] for r in rows if r["best_train_frames"] != r["last_train_frames"]]
        if unequal:
            out += ["", f"For {', '.join(unequal)} the two heads were trained on different numbers of frames, which "
                    "flatters the exit trained on more; docs/research.md compares them on equal frames."]
    return out + [""]


def _claim_fixed_vs_dynamic(results: dict) -> list[str]:
    """Claim (c): one fixed exit per task against dynamic exiting at equal mean FLOPs."""
    rows = results["claims"]["c"]
    out = ["### (c) Fixed exit vs dynamic exiting at equal mean FLOPs", "",
           "Dynamic accuracy is read off each policy's accuracy-vs-mean-FLOPs curve (its upper envelope, "
           "linearly interpolated) at the fixed exit's cost; n/a means no threshold is that cheap. These runs use "
           f"{results['dynamic_frames']} frames per task, so one accuracy carries a standard error of up to "
           f"{100 * (0.25 / results['dynamic_frames']) ** 0.5:.1f} points; smaller gaps are within noise.", "",
           "| task | fixed exit | GFLOPs/frame | fixed acc | entropy | confidence | patience | fixed ms/frame |",
           "|---|---|---|---|---|---|---|---|"]
    wins = total = 0
    for r in rows:
        cells = []
        for kind in POLICIES:
            acc = r["policies"][kind]["accuracy"]
            if acc is not None:
                total += 1
                wins += r["accuracy"] >= acc
            cells.append(pct(acc) if acc is None else f"{pct(acc)} ({100 * (acc - r['accuracy']):+.1f})")
        out.append(f"| {r['task']} | {r['exit']} | {r['gflops']:.4f} | {pct(r['accuracy'])} | " + " | ".join(cells)
                   + f" | {r['ms_per_frame']:.2f} |")
    out += ["", f"At the chosen exit's cost the fixed exit is at least as accurate as the dynamic policy in {wins} of "
            f"{total} comparable (task, policy) pairs"
            + (" (positive differences above are where dynamic exiting wins)." if wins < total else "."), "",
            "Every dynamic operating point (threshold) against the fixed-exit curve at the same mean FLOPs "
            "(fixed exits' upper envelope, linearly interpolated: splitting traffic between two exits realises it):", "",
            "| task | " + " | ".join(f"{k}: fixed ≥ dynamic" for k in POLICIES) + " | mean gap (fixed − dynamic) |",
            "|---|" + "---|" * (len(POLICIES) + 1)]
    points = beaten = 0
    for r in rows:
        cells = [f"{r['curve'][k]['fixed_at_least_as_good']}/{r['curve'][k]['points']}" for k in POLICIES]
        gaps = " / ".join(f"{100 * r['curve'][k]['mean_gap']:+.1f}" for k in POLICIES)
        out.append(f"| {r['task']} | " + " | ".join(cells) + f" | {gaps} points |")
        points += sum(r["curve"][k]["points"] for k in POLICIES)
        beaten += sum(r["curve"][k]["fixed_at_least_as_good"] for k in POLICIES)
    out += ["", f"Fixed exits match or beat {beaten} of {points} dynamic operating points at equal mean FLOPs: "
            + ("the claim holds here." if beaten == points else
               "the claim holds for most but not all points." if beaten >= points / 2 else
               "the claim does NOT hold here: dynamic exiting wins at most operating points."), ""]
    return out


def trunk_only(entry: dict) -> dict[str, float | None]:
    """Val and test accuracy of the exit's best head (by validation) that reads the trunk alone: the kept
    head, or where that reads side features, the best of the trunk-only candidates trained beside it
    (None where none was)."""
    alone = [entry] if not entry.get("side") else [c for name, c in entry.get("by_pooling", {}).items()
                                                   if "+" not in name]
    best = max(alone, key=lambda c: c["val_accuracy"], default={})
    return {"trunk_only_val_accuracy": best.get("val_accuracy"), "trunk_only_test_accuracy": best.get("test_accuracy")}


def _exit_tables(results: dict, plots: list[str]) -> list[str]:
    out = ["## Accuracy per exit", "",
           "`head reads`: the exit's tokens alone, or beside side features of the raw frame (`lines`: the four "
           "spectral lines; `hand`: the 27 hand features; `symbols`: the lines and the frame's symbols recovered "
           "blind, fitted to square constellations; `cancel`: the lines and the frame less its strongest signal, "
           "taken out blind; `impairments`: what the transmitter's hardware leaves on the frame, read where the channel "
           "cannot move it; `spatial`: how the energy spreads over the array's directions; `beams`: the DFT beam shares), "
           "kept where validation "
           "prefers them; the last column is the trunk-only head at the same exit.", ""]
    out += [f"![{p}]({p})" for p in plots if p.startswith("exits")] + [""]
    for task, r in results["tasks"].items():
        out += [f"### {task}", "", "| exit | GFLOPs/frame | head reads | val acc | test acc | test acc, trunk only |",
                "|---|---|---|---|---|---|"]
        for e in r["exits"]:
            mark = " **(chosen)**" if e["exit"] == r["chosen_exit"] else ""
            out.append(f"| {e['exit']}{mark} | {e['gflops']:.4f} | {head_reads(e.get('side'))} | {pct(e['val_accuracy'])} | "
                       f"{pct(e['test_accuracy'])} | {pct(e.get('trunk_only_test_accuracy'))} |")
        out.append("")
    return out


def _snr_plots(results: dict, plots: list[str]) -> list[str]:
    if not any(r["test_accuracy_by_snr"] for r in results["tasks"].values()):
        return []
    return ["## Modulation accuracy vs SNR", ""] + [f"![{p}]({p})" for p in plots if p.startswith("snr")] + [""]


def _dynamic_tables(results: dict, plots: list[str]) -> list[str]:
    out = ["## Dynamic exiting vs fixed exits", "",
           "Every frame is served by the engine (`xapp/engine/runner.py`) with the policy in "
           "`xapp/model/policies.py`; rows leave the batch at their exit, so the FLOPs saved are not computed.", ""]
    out += [f"![{p}]({p})" for p in plots if p.startswith("dynamic")] + [""]
    for task, r in results["tasks"].items():
        out += [f"### {task}", "", "| policy | setting | accuracy | mean GFLOPs/frame | ms/frame | frames leaving at exit 1..D |",
                "|---|---|---|---|---|---|"]
        for kind, rows in r["dynamic"].items():
            for row in rows:
                out.append(f"| {kind} | {row['setting']} | {pct(row['accuracy'])} | {row['mean_gflops']:.4f} | "
                           f"{row['ms_per_frame']:.2f} | {' '.join(str(c) for c in row['exit_counts'])} |")
        out.append("")
    return out


# ---------------------------------------------------------------------------------------------
# Plots


def plot_all(results: dict, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = results["tasks"]
    names = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for task, r in tasks.items():
        g = [e["gflops"] for e in r["exits"]]
        ax.plot(g, [100 * e["test_accuracy"] for e in r["exits"]], "o-", label=task)
        chosen = next(e for e in r["exits"] if e["exit"] == r["chosen_exit"])
        ax.plot(chosen["gflops"], 100 * chosen["test_accuracy"], "k*", ms=12)
    ax.set(xlabel="GFLOPs per frame (exit 1 … full depth)", ylabel="test accuracy (%)",
           title="Accuracy per exit (★ = chosen exit)")
    ax.grid(alpha=0.3)
    ax.legend()
    names.append(_save(fig, out, "exits.png"))

    snr = {t: r["test_accuracy_by_snr"] for t, r in tasks.items() if r["test_accuracy_by_snr"]}
    for task, by_exit in snr.items():
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for k, bins in sorted(by_exit.items(), key=lambda kv: int(kv[0])):
            edges = sorted(bins, key=float)
            style = "k-o" if int(k) == tasks[task]["chosen_exit"] else "-"
            ax.plot([float(e) + SNR_BIN_DB / 2 for e in edges], [100 * bins[e]["accuracy"] for e in edges], style, label=f"exit {k}")
        ax.set(xlabel="SNR (dB, bin centre)", ylabel="test accuracy (%)", title=f"{task}: accuracy vs SNR per exit")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        names.append(_save(fig, out, f"snr_{task}.png"))

    fig, axes = plt.subplots(2, len(tasks), figsize=(4 * len(tasks), 7), squeeze=False)
    for col, (task, r) in enumerate(tasks.items()):
        for row, key, label in ((0, "mean_gflops", "mean GFLOPs/frame"), (1, "ms_per_frame", "measured ms/frame")):
            ax = axes[row][col]
            for kind, runs in r["dynamic"].items():
                pts = sorted((p[key], 100 * p["accuracy"]) for p in runs)
                ax.plot(*zip(*pts), "ks-" if kind == "fixed" else "o--", label=kind, ms=4)
            ax.set(xlabel=label, ylabel="accuracy (%)" if col == 0 else None)
            ax.grid(alpha=0.3)
        axes[0][col].set_title(task)
    axes[0][0].legend(fontsize=8)
    fig.suptitle("Fixed exits vs dynamic exiting (served through the engine)")
    names.append(_save(fig, out, "dynamic.png"))
    return names


def _save(fig, out: Path, name: str) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(out / name, dpi=110, metadata={"Software": None})
    plt.close(fig)
    return name


def write_report(results: dict, out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plots = plot_all(results, out)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=_jsonable) + "\n")
    path = out / "results.md"
    previous = path.read_text() if path.is_file() else ""
    kept = "\n".join(part for part in (compare.keep_section(previous, t) for t in KEPT_SECTIONS) if part)
    path.write_text(render_markdown(results, plots) + ("\n" + kept if kept else ""))
    return path


def _jsonable(value: object) -> object:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return str(value)
