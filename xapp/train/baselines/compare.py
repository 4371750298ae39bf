"""The report's comparison: heads at every exit on our test set and on the cross-check set, beside the
cached baselines (`xapp baselines`), each with GFLOPs per frame."""

from __future__ import annotations

import json
import math
from pathlib import Path

from xapp.model import Encoder, Head
from xapp.train.calibration import exit_predictions

from .frames import HIGH_SNR_DB, crosscheck_frames, fingerprint, same_frames, scores, signature, split_frames


def heads_on_both_sets(encoder: Encoder, heads: dict[int, Head], manifest: dict, task: str) -> dict:
    """Scores per exit on our test split and on the cross-check set of the same size (None if absent)."""
    ours = split_frames(manifest, task, "test")
    other = crosscheck_frames(task, len(ours.y))
    result = {"test_fingerprint": fingerprint(ours), "test_signature": signature(ours), "exits": {}}
    predicted = {name: exit_predictions(encoder, heads, d.x) for name, d in (("ours", ours), ("crosscheck", other)) if d}
    for k in sorted(heads):
        result["exits"][k] = {name: scores(p[k].label, d, p[k].confidence) if d else None
                              for name, d, p in (("ours", ours, predicted.get("ours")),
                                                 ("crosscheck", other, predicted.get("crosscheck")))}
    return result


def read_baselines(path: str | Path) -> dict | None:
    path = Path(path)
    return json.loads(path.read_text()) if path.is_file() else None


def _cell(score: dict | None, key: str = "accuracy") -> str:
    return "n/a" if not score or score.get(key) is None else f"{100 * score[key]:.1f} %"


def render(results: dict) -> list[str]:
    """Markdown lines of the comparison section."""
    baselines, source = results.get("baselines"), results.get("baselines_file")
    out = ["## Our test set, the cross-check set and the baselines", "",
           "Heads trained on our generators, scored at every exit on our test split and on the independent "
           "cross-check set (`xapp.crosscheck`, never trained on; same size, seed "
           f"{results['crosscheck_seed']}), beside the classical and supervised baselines trained on the heads' "
           f"training frames. Accuracy over all frames and at SNR ≥ {HIGH_SNR_DB:.0f} dB.",
           "", f"- baselines: `{baselines['command']}`"
           + "".join(f", then `{c}`" for c in baselines.get("updates", [])) + f" (cached in `{source}`)" if baselines else
           f"- baselines: none cached (`{source}` missing; run `xapp baselines --out {source}`)", ""]
    for task, r in results["comparison"].items():
        chosen = results["tasks"][task]["chosen_exit"]
        gflops = {e["exit"]: e["gflops"] for e in results["tasks"][task]["exits"]}
        out += [f"### {task}", "", "| model | GFLOPs/frame | our test | ours, SNR ≥ 10 dB | cross-check | cross-check, SNR ≥ 10 dB |",
                "|---|---|---|---|---|---|"]
        for k, s in r["exits"].items():
            mark = " **(chosen)**" if int(k) == chosen else ""
            out.append(f"| head at exit {k}{mark} | {gflops[int(k)]:.4f} | {_cell(s['ours'])} | "
                       f"{_cell(s['ours'], 'accuracy_high_snr')} | {_cell(s['crosscheck'])} | "
                       f"{_cell(s['crosscheck'], 'accuracy_high_snr')} |")
        entry = (baselines or {}).get("tasks", {}).get(task)
        stale = entry is not None and not same_frames(entry, r)
        for kind in ("classical", "supervised"):
            if entry and kind in entry:
                b = entry[kind]
                out.append(f"| {kind}: {b['method']} | {b['gflops']:.6f} | {_cell(b['ours'])} | "
                           f"{_cell(b['ours'], 'accuracy_high_snr')} | {_cell(b['crosscheck'])} | "
                           f"{_cell(b['crosscheck'], 'accuracy_high_snr')} |")
        chosen_scores = r["exits"][chosen] if chosen in r["exits"] else r["exits"][str(chosen)]
        notes = []
        if chosen_scores["crosscheck"]:
            gap = 100 * (chosen_scores["ours"]["accuracy"] - chosen_scores["crosscheck"]["accuracy"])
            notes.append(f"At the chosen exit the cross-check costs {gap:+.1f} points against our test set.")
        if entry:
            notes.append(f"Baselines trained on {entry['train_frames']} frames.")
            if chosen_scores["ours"] and not stale:
                notes.append(verdict(chosen_scores["ours"], entry))
        if stale:
            notes.append("**Stale baselines**: they were scored on other test frames than these (the generators or "
                         f"splits changed); rerun `xapp baselines --out {source}`.")
        out += ["", " ".join(notes), ""] if notes else [""]
        out += confident_decisions(chosen_scores, chosen)
    return out


def confident_decisions(chosen_scores: dict, exit_: int) -> list[str]:
    """The chosen exit's accuracy on the decisions at least as sure as each bound, and the share of
    frames those are: what a control loop, or `control.min_confidence`, gets by acting on them only."""
    ours, other = chosen_scores["ours"], chosen_scores["crosscheck"]
    if not ours or "by_confidence" not in ours:
        return []
    out = [f"Acting only on confident decisions (head at exit {exit_}; confidence = the top softmax "
           "probability each decision carries):", "",
           "| confidence ≥ | our test: share of frames | accuracy | cross-check: share of frames | accuracy |",
           "|---|---|---|---|---|"]
    theirs = other["by_confidence"] if other and "by_confidence" in other else [None] * len(ours["by_confidence"])
    for mine, cross in zip(ours["by_confidence"], theirs):
        out.append(f"| {mine['min_confidence']:g} | {_cell(mine, 'coverage')} | {_cell(mine)} | "
                   f"{_cell(cross, 'coverage')} | {_cell(cross)} |")
    errors = [f"{100 * s['calibration_error']:.1f} points on {name}" for name, s in
              (("our test set", ours), ("the cross-check", other)) if s and "calibration_error" in s]
    return out + ["", f"Calibration error (ECE, the frame-weighted gap between confidence and accuracy): "
                      f"{' and '.join(errors)}.", ""]


def verdict(head: dict, entry: dict) -> str:
    """Which decides better on our test set, the head at the chosen exit or the task's best baseline,
    by more than twice the standard error of the difference (the two taken as independent, which
    overstates it when they are scored on the same frames)."""
    kind = max((k for k in ("classical", "supervised") if k in entry), key=lambda k: entry[k]["ours"]["accuracy"])
    p, q = head["accuracy"], entry[kind]["ours"]["accuracy"]
    diff, se = 100 * (p - q), 100 * math.sqrt((p * (1 - p) + q * (1 - q)) / head["n"])
    who = ("the head decides better" if diff > 2 * se else "the baseline decides better" if diff < -2 * se
           else "a tie within noise")
    return (f"Against the best baseline ({kind}, {100 * q:.1f} %) the head at the chosen exit is {diff:+.1f} points "
            f"(SE {se:.1f}): {who}.")


def keep_section(previous: str, title: str) -> str:
    """The section of an earlier results.md whose heading starts with `title` (through the line before
    the next heading of the same or a higher level), or '' when there is none."""
    lines, kept, level = previous.splitlines(), [], 0
    for line in lines:
        hashes = len(line) - len(line.lstrip("#"))
        heading = 0 < hashes <= 6 and line[hashes:hashes + 1] == " "
        if level and heading and hashes <= level:
            break
        if not level and heading and line[hashes + 1:].startswith(title):
            level = hashes
        if level:
            kept.append(line)
    return "\n".join(kept).rstrip() + "\n" if kept else ""
