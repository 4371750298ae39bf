"""`xapp top`: a terminal view of a running xApp, refreshed from its /metrics and readiness
endpoints: per task decisions/s, p50/p99 latency, exit, rejects and sheds; per E2 node its stream
state. Rates and quantiles are over the last refresh interval (two scrapes), as Prometheus's rate()
and histogram_quantile() would compute them. Plain text and ANSI only, so it works over SSH."""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from xapp.ops.http import READY



class TopError(Exception):
    """The xApp's ops endpoint cannot be reached or does not answer as an xApp."""


@dataclass(frozen=True)
class Scrape:
    at: float  # time.monotonic()
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]  # (name, sorted labels) -> value
    ready: dict  # /ready's JSON body

    def series(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        return {labels: v for (n, labels), v in self.samples.items() if n == name}


def scrape(url: str, timeout_s: float = 2.0) -> Scrape:
    """One read of /metrics and /ric/v1/health/ready (503 is an answer too: not ready)."""
    base = url.rstrip("/")
    try:
        text = urllib.request.urlopen(f"{base}/metrics", timeout=timeout_s).read().decode()
    except (urllib.error.URLError, OSError) as exc:
        raise TopError(f"{base}/metrics: {getattr(exc, 'reason', exc)}") from exc
    try:
        body = urllib.request.urlopen(f"{base}{READY}", timeout=timeout_s).read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
    except (urllib.error.URLError, OSError) as exc:
        raise TopError(f"{base}{READY}: {getattr(exc, 'reason', exc)}") from exc
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    try:
        ready = json.loads(body or b"{}")
    except ValueError:
        ready = {}
    return Scrape(time.monotonic(), samples, ready)


def _by(scrape: Scrape, name: str, key: str, **match: str) -> dict[str, float]:
    """Series `name` summed by label `key`, over the series whose labels have the values in `match`."""
    out: dict[str, float] = defaultdict(float)
    for labels, v in scrape.series(name).items():
        d = dict(labels)
        if all(d.get(k) == want for k, want in match.items()):
            out[d.get(key, "")] += v
    return out


def _delta(now: Scrape, before: Scrape, name: str, key: str, **match: str) -> dict[str, float]:
    a, b = _by(now, name, key, **match), _by(before, name, key, **match)
    return {k: max(0.0, v - b.get(k, 0.0)) for k, v in a.items()}


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """histogram_quantile over cumulative bucket counts {upper bound: count} (linear within a bucket)."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = bound, count
    return lower


def task_quantiles(now: Scrape, before: Scrape, q: float) -> dict[str, float | None]:
    per_task: dict[str, dict[float, float]] = defaultdict(dict)
    old = before.series("xapp_decision_latency_seconds_bucket")
    for labels, v in now.series("xapp_decision_latency_seconds_bucket").items():
        d = dict(labels)
        per_task[d["task"]][float(d["le"])] = v - old.get(labels, 0.0)
    return {task: quantile(q, buckets) for task, buckets in per_task.items()}


def sure_shares(now: Scrape, before: Scrape, bound: str = "0.8") -> dict[str, float]:
    """Per task, the share of the window's decisions more confident than `bound` (a bucket of
    xapp_decision_confidence): what a control.min_confidence of that bound lets through."""
    decided = _delta(now, before, "xapp_decision_confidence_count", "task")
    unsure = _delta(now, before, "xapp_decision_confidence_bucket", "task", le=bound)
    return {task: 1.0 - unsure.get(task, 0.0) / n for task, n in decided.items() if n > 0}


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{1000 * seconds:.1f}"


def render(now: Scrape, before: Scrape, url: str) -> str:
    seconds = max(now.at - before.at, 1e-9)
    decisions = _delta(now, before, "xapp_node_decisions_total", "task")
    sheds = _delta(now, before, "xapp_frames_shed_total", "task")
    exits = {dict(labels)["task"]: int(v) for labels, v in now.series("xapp_task_exit").items()}
    p50, p99 = task_quantiles(now, before, 0.5), task_quantiles(now, before, 0.99)
    rejects = sum(_delta(now, before, "xapp_frames_rejected_total", "node").values())
    ready = now.ready
    state = ready.get("status", "?")
    trunk = [dict(labels) for labels, v in now.series("xapp_engine_setting").items() if v == 1]
    lines = [f"xapp top  {url}  {time.strftime('%H:%M:%S')}  {state}"
             + (f" ({'; '.join(ready.get('reasons', []))})" if ready.get("reasons") else ""),
             f"over the last {seconds:.1f} s; rejected indications {rejects / seconds:.1f}/s"
             + "".join(f"; trunk on {t['runtime']} {t['precision']} ({t['how']})" for t in trunk), ""]
    sure = sure_shares(now, before)
    lines.append(f"{'task':<14}{'dec/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'exit':>6}{'shed/s':>8}{'sure >0.8':>11}")
    for task in sorted(set(exits) | set(decisions)):
        share = f"{100 * sure[task]:.0f}%" if task in sure else "-"
        lines.append(f"{task:<14}{decisions.get(task, 0.0) / seconds:>8.1f}{_ms(p50.get(task)):>9}{_ms(p99.get(task)):>9}"
                     f"{exits.get(task, '-'):>6}{sheds.get(task, 0.0) / seconds:>8.1f}{share:>11}")
    node_decisions = _delta(now, before, "xapp_node_decisions_total", "node")
    node_rejects = _delta(now, before, "xapp_frames_rejected_total", "node")
    reconnects = _by(now, "xapp_e2_reconnects_total", "node")
    last = _by(now, "xapp_node_last_decision_timestamp_seconds", "node")
    nodes = ready.get("nodes", {})
    lines += ["", f"{'node':<18}{'stream':>8}{'down s':>8}{'dec/s':>8}{'rej/s':>7}{'resubs':>8}{'last decision':>15}"]
    for node in sorted(set(nodes) | set(node_decisions)):
        info = nodes.get(node, {})
        stream = "-" if not info else ("up" if info.get("up") else "DOWN")
        age = f"{max(0.0, time.time() - last[node]):.1f} s ago" if node in last else "never"
        lines.append(f"{node:<18}{stream:>8}{info.get('down_s', 0.0):>8.1f}{node_decisions.get(node, 0.0) / seconds:>8.1f}"
                     f"{node_rejects.get(node, 0.0) / seconds:>7.1f}{reconnects.get(node, 0.0):>8.0f}{age:>15}")
    return "\n".join(lines)
