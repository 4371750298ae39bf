"""The fault campaign: the real xApp in this process, fed by simulated E2 nodes behind fault proxies,
publishing to a real Redis and a ZMQ listener, taken through six phases:

  flood   malformed frames of every kind the nodes and proxies can make, interleaved with good ones:
          each rejected under its reason, every good frame answered (decision or counted shed)
  wire    bytes that are not protobuf, bad and missing Acknowledgements: each a counted resubscribe
  churn   stream aborts and ends, node restarts; then one node down past e2.max_down_s: /ready
          must name it (503) and recover (200)
  redis   Redis down for longer than the publish buffer lasts: every decision written or counted dropped
  reload  bad descriptor edits: each refused, serving goes on
  ops     1 MB request line and header, slowloris, 1,000 idle connections: /alive timed meanwhile
  soak    steady load with RSS sampled

Between phases the nodes pause and the xApp drains, so each phase's books close exactly. A broken
guarantee is listed in the report's `failures`; `xapp chaos` exits non-zero on any.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import yaml

from xapp.app import Overrides, XApp
from xapp.chaos.plan import ChaosPlan
from xapp.chaos.http_attacks import idle_connections, oversized, probe_alive, slowloris
from xapp.chaos.proxy import FaultProxy
from xapp.config import load_descriptor
from xapp.e2.faults import MALFORMED
from xapp.e2.sim import SimulatedNodes
from xapp.harness.demo import adapt_descriptor
from xapp.ops.http import READY
from xapp.ops.metrics import Metrics
from xapp.ops.redis_server import RedisServer, free_port
from xapp.publish.listen import DecisionListener

WIRE_KINDS = ("not_protobuf", "bad_ack", "no_ack")
CHURN_KINDS = ("abort", "end", "node_restart", "proxy_restart")


class ChaosError(Exception):
    """The campaign could not run (setup failed, the xApp never became ready)."""


@dataclass
class ChaosReport:
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # (phase, what, value)
    failures: list[str] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)  # the same numbers, machine-readable

    def add(self, phase: str, what: str, value: float | str, key: str | None = None) -> None:
        text = f"{value:,.3g}" if isinstance(value, float) else (f"{value:,}" if isinstance(value, int) else value)
        self.rows.append((phase, what, text))
        if key is not None and isinstance(value, (int, float)):
            self.figures[key] = value

    def check(self, ok: bool, failure: str) -> None:
        if not ok:
            self.failures.append(failure)

    def table(self) -> str:
        width = max(len(what) for _, what, _ in self.rows)
        lines, last = [], None
        for phase, what, value in self.rows:
            lines.append(f"{phase if phase != last else '':<8} {what:<{width}}  {value}")
            last = phase
        verdict = "all guarantees held" if not self.failures else f"{len(self.failures)} guarantee(s) broken:"
        return "\n".join([*lines, "", verdict, *(f"  - {f}" for f in self.failures)])


class _TracebackCounter(logging.Handler):
    """Counts log records that carry a traceback, and "task died" records."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.tracebacks = 0
        self.deaths = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.tracebacks += 1
        if record.getMessage().startswith("xapp task"):
            self.deaths += 1


class Campaign:
    def __init__(self, descriptor: Path, plan: ChaosPlan, edit: Callable[[dict], None] | None = None,
                 progress: Callable[[str], None] = lambda line: None) -> None:
        if plan.outage_s <= plan.max_down_s:
            raise ChaosError(f"outage_s {plan.outage_s} must exceed max_down_s {plan.max_down_s}")
        self.source = Path(descriptor)
        self.plan = plan
        self._edit = edit
        self._progress = progress
        self.report = ChaosReport()
        self.answered: set[tuple[str, int]] = set()
        self.received = 0
        self._unheard = 0.0  # decisions published before the listener's subscription reached the PUB socket

    # -- set-up ------------------------------------------------------------------------------

    def _descriptor_edit(self, doc: dict) -> None:
        if self._edit is not None:
            self._edit(doc)
        p = self.plan
        doc["e2"]["max_down_s"] = p.max_down_s
        doc["e2"]["reconnect"] = {"initial_backoff_ms": 50, "max_backoff_ms": 500, "jitter": 0.2}
        doc["publish"]["redis"]["buffer"] = p.redis_buffer
        doc["batching"]["deadline_ms"] = max(doc["batching"]["deadline_ms"], 5000)  # shedding is not under test
        doc["ops"]["bind"] = "127.0.0.1"

    async def run(self) -> ChaosReport:
        counter = _TracebackCounter()
        logging.getLogger().addHandler(counter)
        try:
            with tempfile.TemporaryDirectory(prefix="xapp-chaos-") as tmp:
                await self._run(Path(tmp), counter)
        finally:
            logging.getLogger().removeHandler(counter)
        return self.report

    async def _run(self, tmp: Path, counter: _TracebackCounter) -> None:
        p = self.plan
        tasks = list(load_descriptor(self.source).enabled_tasks)
        async with contextlib.AsyncExitStack() as stack:
            self.redis = RedisServer(tmp / "redis")
            await asyncio.to_thread(self.redis.start)
            stack.push_async_callback(asyncio.to_thread, self.redis.stop)
            self.nodes = SimulatedNodes(p.nodes, tasks=tasks, rate_hz=0.0, pool_size=p.pool, seed=p.seed)
            await self.nodes.start()
            stack.push_async_callback(self.nodes.stop)
            self.proxies = {n.node_id: FaultProxy(n.node_id, n.endpoint.address) for n in self.nodes}
            for proxy in self.proxies.values():
                await proxy.start()
                stack.push_async_callback(proxy.stop)
            zmq_endpoint = f"tcp://127.0.0.1:{free_port()}"
            self.path = adapt_descriptor(
                self.source, tmp / "descriptors" / "xapp.yaml", nodes=[x.endpoint for x in self.proxies.values()],
                zmq_endpoint=zmq_endpoint, redis_url=self.redis.url, http_port=free_port(), edit=self._descriptor_edit,
            )
            self.metrics = Metrics()
            self.app = XApp(load_descriptor(self.path), self.metrics,
                            Overrides(threads=p.threads, ops_host="127.0.0.1", watch_interval_s=0.2))
            stop = asyncio.Event()
            app_task = asyncio.create_task(self.app.run(stop))
            self.listener = DecisionListener(zmq_endpoint)
            collector = asyncio.create_task(self._collect())
            try:
                await self._until(lambda: all(s.up for s in self.app.subscribers.values()) or app_task.done(),
                                  "all subscriptions up", 120.0)
                if app_task.done():
                    app_task.result()
                await self._warm_up()
                self._progress("xapp ready; campaign starting")
                for phase in (self._flood, self._wire, self._churn, self._redis_outage, self._reload, self._ops,
                              self._soak):
                    await phase()
                    self._progress(f"{phase.__name__.strip('_')} done")
                crashed = self.app.crashed_tasks() + (["app"] if app_task.done() else [])
            finally:
                collector.cancel()
                stop.set()
                await asyncio.gather(app_task, collector, return_exceptions=True)
                self.listener.close()
        r = self.report
        r.add("summary", "tasks crashed", len(crashed), "crashes")
        r.add("summary", "log records with a traceback", counter.tracebacks, "tracebacks")
        r.check(not crashed and counter.deaths == 0, f"tasks crashed: {crashed or counter.deaths}")

    async def _collect(self) -> None:
        while True:
            _, d = await self.listener.recv()
            self.received += 1
            self.answered.add((d.node_id, d.sequence_number))

    # -- measurement helpers -----------------------------------------------------------------

    def _by_label(self, name: str, label: str) -> Counter:
        out: Counter = Counter()
        for family in self.metrics.registry.collect():
            for s in family.samples:
                if s.name == name:
                    out[s.labels[label]] += s.value
        return out

    @staticmethod
    async def _until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> float:
        """Seconds until `condition` holds; raises ChaosError past `timeout`."""
        start = time.monotonic()
        while not condition():
            if time.monotonic() - start > timeout:
                raise ChaosError(f"gave up after {timeout:g} s waiting for: {what}")
            await asyncio.sleep(0.005)
        return time.monotonic() - start

    def _set_rate(self, rate_hz: float) -> None:
        for node in self.nodes:
            node.rate_hz = rate_hz

    def _in_flight(self) -> float:
        """Frames taken but neither decided nor shed, plus decisions published on ZMQ but not yet received."""
        taken, decided = self.metrics.total("xapp_frames_in_total"), self.metrics.total("xapp_decisions_total")
        unanswered = taken - decided - self.metrics.total("xapp_frames_shed_total")
        return unanswered + self.metrics.total("xapp_published_total", sink="zmq") - self._unheard - self.received

    async def _warm_up(self) -> None:
        """Serve until the listener hears decisions: a ZMQ subscriber only gets what is published after
        its subscription reaches the PUB socket, so the books start once it has."""
        self._set_rate(self.plan.rate_hz)
        await self._until(lambda: self.received > 0, "the first decision on ZMQ", 60)
        await self._pause_and_drain(timeout=5.0)
        self._unheard = self.metrics.total("xapp_published_total", sink="zmq") - self.received

    async def _pause_and_drain(self, timeout: float = 60.0) -> None:
        """Nodes paused, nothing moving in the xApp for 0.5 s, and nothing in flight (a batch in the
        engine moves no counter until it is done). Past `timeout` with something still unaccounted
        for it returns anyway, and the phase's books show the loss."""
        self._set_rate(0.0)

        def state() -> tuple:
            return (self.metrics.total("xapp_frames_in_total"), self.metrics.total("xapp_frames_rejected_total"), self.received,
                    self.metrics.total("xapp_published_total"), self.metrics.total("xapp_publish_dropped_total"))

        end = time.monotonic() + timeout
        before = state()
        while True:
            await asyncio.sleep(0.5)
            now = state()
            settled = now == before and self.metrics.total("xapp_batch_queue_depth") == 0
            if settled and (self._in_flight() == 0 or time.monotonic() > end):
                return
            if time.monotonic() > end:
                raise ChaosError(f"the xApp did not settle within {timeout:g} s")
            before = now

    def _good_sent(self) -> int:
        return sum(node.frames_sent for node in self.nodes)

    # -- phases ------------------------------------------------------------------------------

    async def _flood(self) -> None:
        p, r = self.plan, self.report
        rejected0 = self._by_label("xapp_frames_rejected_total", "reason")
        good0, answered0, shed0 = self._good_sent(), len(self.answered), self.metrics.total("xapp_frames_shed_total")
        taken0 = self.metrics.total("xapp_frames_in_total")
        sent0 = {n.node_id: len(n.malformed_sent) for n in self.nodes}
        kinds = list(MALFORMED) * p.flood_rounds
        self._set_rate(p.rate_hz)
        for node in self.nodes:
            node.inject(kinds)
        await self._until(lambda: all(len(n.malformed_sent) - sent0[n.node_id] == len(kinds) for n in self.nodes),
                          "malformed frames sent", 60 + 2 * len(kinds) / p.rate_hz)
        await asyncio.sleep(0.2)  # replays only once the node's own faults are through: each copies a good frame
        for proxy in self.proxies.values():
            proxy.inject("duplicate", p.flood_rounds)
        await self._until(lambda: all(x.injected["duplicate"] >= p.flood_rounds for x in self.proxies.values()),
                          "replays sent")
        await asyncio.sleep(0.2)
        await self._pause_and_drain()

        expected = Counter(MALFORMED[k] for n in self.nodes for k in kinds)
        expected["replay"] += p.flood_rounds * len(self.nodes.nodes)
        got = self._by_label("xapp_frames_rejected_total", "reason") - rejected0
        r.add("flood", "malformed kinds", len(MALFORMED) + 1, "flood_kinds")
        r.add("flood", "malformed frames sent", sum(expected.values()), "flood_malformed")
        for reason in sorted(expected):
            r.add("flood", f"  rejected as {reason}", f"{int(got[reason]):,} of {expected[reason]:,}")
            r.check(got[reason] == expected[reason], f"flood: {got[reason]:g} rejected as {reason}, expected {expected[reason]}")
        r.check(set(got) <= set(expected), f"flood: unexpected reject reasons {sorted(set(got) - set(expected))}")
        good = self._good_sent() - good0
        answered = len(self.answered) - answered0
        shed = int(self.metrics.total("xapp_frames_shed_total") - shed0)
        r.add("flood", "good frames sent", good, "flood_good")
        r.add("flood", "good frames taken by the xApp", int(self.metrics.total("xapp_frames_in_total") - taken0))
        r.add("flood", "good frames answered", answered, "flood_answered")
        r.add("flood", "good frames shed (counted)", shed)
        r.add("flood", "good frames lost silently", good - answered - shed, "flood_silent")
        r.check(good == answered + shed, f"flood: {good} good frames sent, {answered} answered + {shed} shed")
        count = self.metrics.total("xapp_stage_latency_seconds_count", stage="indication_to_decision")
        mean_ms = 1000 * self.metrics.total("xapp_stage_latency_seconds_sum", stage="indication_to_decision") / max(1.0, count)
        r.add("flood", "indication-to-decision mean (ms)", round(mean_ms, 1), "flood_latency_mean_ms")
        r.check(mean_ms < 10_000, f"flood: absurd latency reached the histogram (mean {mean_ms:.3g} ms)")

    async def _recover(self, node_id: str, fault: Callable[[], object], cause: str | None = None) -> float:
        """Seconds from a fault to the node's subscription being up again (after it went down)."""
        sub = self.app.subscribers[node_id]
        count0 = self.metrics.total("xapp_e2_resubscribes_total", node=node_id)
        start = time.monotonic()
        result = fault()
        if asyncio.iscoroutine(result):
            await result
        await self._until(lambda: self.metrics.total("xapp_e2_resubscribes_total", node=node_id) > count0,
                          f"{node_id} resubscribing after {cause or 'a fault'}")
        await self._until(lambda: sub.up, f"{node_id} up again")
        if cause is not None:
            self.report.check(self.metrics.total("xapp_e2_resubscribes_total", node=node_id, cause=cause) > 0,
                              f"{node_id}: no resubscribe counted as {cause}")
        return time.monotonic() - start

    async def _wire(self) -> None:
        p, r = self.plan, self.report
        causes0 = self._by_label("xapp_e2_resubscribes_total", "cause")
        self._set_rate(p.rate_hz)
        times = []
        for _ in range(p.wire_rounds):
            for node_id, proxy in self.proxies.items():
                for kind in WIRE_KINDS:
                    if kind == "not_protobuf":
                        times.append(await self._recover(node_id, lambda: proxy.inject(kind), "bad_message"))
                    else:  # the next Ack is bad: end the current stream to get one
                        proxy.inject(kind)
                        times.append(await self._recover(node_id, lambda: proxy.inject("abort"), "bad_ack"))
        await self._pause_and_drain()
        causes = self._by_label("xapp_e2_resubscribes_total", "cause") - causes0
        r.add("wire", "faults injected", len(times), "wire_faults")
        for cause in sorted(causes):
            r.add("wire", f"  resubscribes: {cause}", int(causes[cause]))
        self._recovery_rows("wire", times)

    def _recovery_rows(self, phase: str, times: list[float]) -> None:
        ms = sorted(1000 * t for t in times)
        p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
        self.report.add(phase, "recovery median / p95 / max (ms)",
                        f"{statistics.median(ms):.0f} / {p95:.0f} / {ms[-1]:.0f}")
        self.report.figures[f"{phase}_recovery_p95_ms"] = p95

    async def _churn(self) -> None:
        p, r = self.plan, self.report
        self._set_rate(p.rate_hz)
        faults = {
            "abort": lambda proxy, node: proxy.inject("abort"),
            "end": lambda proxy, node: proxy.inject("end"),
            "node_restart": lambda proxy, node: node.restart(0.0),
            "proxy_restart": lambda proxy, node: proxy.restart(0.2),
        }
        times = []
        for _ in range(p.churn_cycles):
            for node in self.nodes:
                proxy = self.proxies[node.node_id]
                for kind in CHURN_KINDS:
                    times.append(await self._recover(node.node_id, lambda: faults[kind](proxy, node)))
        r.add("churn", "aborts, ends, restarts", len(times), "churn_faults")
        self._recovery_rows("churn", times)

        victim = self.nodes.nodes[0].node_id
        proxy = self.proxies[victim]
        start = time.monotonic()
        await proxy.stop()
        named = await self._until(lambda: victim in self.app.readiness().detail.get("nodes_down", ()),
                                  f"/ready naming {victim}", p.outage_s + 10)
        status, body = await self._http_ready()
        r.check(status == 503 and victim in body, f"churn: /ready answered {status} {body!r} during the outage")
        others0 = {node for node, _ in self.answered if node != victim}
        await asyncio.sleep(max(0.0, p.outage_s - (time.monotonic() - start)))
        await proxy.start()
        back = await self._until(lambda: self.app.ready(), "ready again after the outage")
        status_after, _ = await self._http_ready()
        r.add("churn", f"outage of {victim} (s)", p.outage_s)
        r.add("churn", "  /ready 503 naming it after (s)", round(named, 2), "outage_ready_503_s")
        r.add("churn", "  /ready 200 again after restart (s)", round(back, 2), "outage_ready_200_s")
        r.check(status_after == 200, f"churn: /ready answered {status_after} after the outage")
        r.check(len(others0) == len(self.nodes.nodes) - 1, "churn: the other nodes were not all served")
        await self._pause_and_drain()
        r.add("churn", "frames taken = decided + shed", self._books_balance("churn"))

    def _books_balance(self, phase: str) -> str:
        """Inside the xApp nothing goes missing: every accepted frame has a decision or a counted shed."""
        taken = self.metrics.total("xapp_frames_in_total")
        decided = self.metrics.total("xapp_decisions_total")
        shed = self.metrics.total("xapp_frames_shed_total")
        self.report.check(taken == decided + shed, f"{phase}: {taken:g} frames taken, {decided:g} decided + {shed:g} shed")
        return f"{taken:,.0f} = {decided:,.0f} + {shed:,.0f}"

    async def _http_ready(self) -> tuple[int, str]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.app.ops.port)
        try:
            writer.write(f"GET {READY} HTTP/1.1\r\nHost: chaos\r\nConnection: close\r\n\r\n".encode())
            raw = await asyncio.wait_for(reader.read(), 5.0)
        finally:
            writer.close()
        head, _, body = raw.decode().partition("\r\n\r\n")
        return int(head.split()[1]), body

    async def _redis_outage(self) -> None:
        p, r = self.plan, self.report
        decided0 = self.metrics.total("xapp_decisions_total")
        written0 = self.metrics.total("xapp_published_total", sink="redis")
        dropped0 = self.metrics.total("xapp_publish_dropped_total", sink="redis")
        self._set_rate(p.rate_hz)
        await asyncio.sleep(0.5)
        await asyncio.to_thread(self.redis.stop)
        during0 = self.metrics.total("xapp_decisions_total")
        await asyncio.sleep(p.redis_outage_s)
        during = self.metrics.total("xapp_decisions_total") - during0
        await asyncio.to_thread(self.redis.start)
        await asyncio.sleep(0.5)
        self._set_rate(0.0)
        decided = lambda: self.metrics.total("xapp_decisions_total") - decided0  # noqa: E731
        accounted = lambda: (self.metrics.total("xapp_published_total", sink="redis") - written0  # noqa: E731
                             + self.metrics.total("xapp_publish_dropped_total", sink="redis") - dropped0)
        await self._until(lambda: accounted() >= decided(), "every decision written to Redis or counted dropped", 30)
        await self._pause_and_drain()
        written = self.metrics.total("xapp_published_total", sink="redis") - written0
        dropped = self.metrics.total("xapp_publish_dropped_total", sink="redis") - dropped0
        r.add("redis", "outage (s)", p.redis_outage_s)
        r.add("redis", "decisions during the outage", int(during), "redis_outage_decisions")
        r.add("redis", "publish buffer (decisions)", p.redis_buffer)
        r.add("redis", "decisions in the phase", int(decided()), "redis_decisions")
        r.add("redis", "dropped (counted)", int(dropped), "redis_dropped")
        r.add("redis", "written", int(written))
        r.add("redis", "lost silently", int(decided() - written - dropped), "redis_silent")
        r.check(decided() == written + dropped, f"redis: {decided():g} decisions, {written:g} written + {dropped:g} dropped")
        r.check(during <= p.redis_buffer or dropped > 0, "redis: the outage overflowed the buffer but nothing was counted dropped")

    def _bad_edits(self, doc: dict) -> dict[str, bytes]:
        task = next(iter(doc["tasks"]))

        def edited(change: Callable[[dict], None]) -> bytes:
            copy = yaml.safe_load(yaml.safe_dump(doc))
            change(copy)
            return yaml.safe_dump(copy, sort_keys=False).encode()

        return {
            "not YAML": b"tasks: [unclosed\n",
            "unknown key": edited(lambda d: d["ops"].update(colour="blue")),
            "exit deeper than the encoder": edited(lambda d: d["tasks"][task].update(exit=999)),
            "unknown task": edited(lambda d: d["tasks"].update(telepathy=dict(d["tasks"][task]))),
            "negative max_wait_ms": edited(lambda d: d["batching"].update(max_wait_ms=-1)),
            "queue_limit below max_batch": edited(lambda d: d["batching"].update(queue_limit=1, max_batch=8)),
            "duplicate node id": edited(lambda d: d["e2"]["nodes"].append(dict(d["e2"]["nodes"][0]))),
            "missing TLS CA file": edited(lambda d: d["e2"].update(tls={"ca": "/nonexistent/ca.pem"})),
        }

    async def _reload(self) -> None:
        r = self.report
        original = self.path.read_bytes()
        edits = self._bad_edits(yaml.safe_load(original))
        self._set_rate(self.plan.rate_hz)
        refused = 0
        applied0 = self.metrics.total("xapp_descriptor_reloads_total", outcome="applied")
        for name, content in edits.items():
            before = self.metrics.total("xapp_descriptor_reloads_total", outcome="rejected")
            self.path.write_bytes(content)
            await self._until(lambda: self.metrics.total("xapp_descriptor_reloads_total", outcome="rejected") > before,
                              f"the bad edit ({name}) refused", 30)
            refused += 1
        applied = self.metrics.total("xapp_descriptor_reloads_total", outcome="applied") - applied0
        self.path.write_bytes(original)  # a valid edit again: applied, and serving as before
        received = self.received
        await self._until(lambda: self.received > received + len(self.nodes.nodes), "decisions after the bad edits", 30)
        await self._pause_and_drain()
        r.add("reload", "bad edits", len(edits), "reload_bad")
        r.add("reload", "refused", refused, "reload_refused")
        r.check(applied == 0, f"reload: {applied:g} bad edit(s) applied")
        r.add("reload", "serving went on", "yes")

    async def _ops(self) -> None:
        r, port = self.report, self.app.ops.port
        self._set_rate(self.plan.rate_hz)
        statuses = {where: await oversized(port, where) for where in ("line", "header")}
        loris = asyncio.create_task(slowloris(port, seconds=30.0))
        probes = []
        async with idle_connections(port, 1000) as opened:
            for _ in range(20):
                probes.append(await probe_alive(port))
                await asyncio.sleep(0.05)
        held = await loris
        await self._pause_and_drain()
        ms = sorted(1000 * seconds for _, seconds in probes)
        answered = sum(status == 200 for status, _ in probes)
        r.add("ops", "1 MB request line / header answered", f"{statuses['line']} / {statuses['header']}")
        r.add("ops", "slowloris held the connection (s)", round(held, 2), "ops_slowloris_held_s")
        r.add("ops", "idle connections opened", opened)
        r.add("ops", "/alive answered meanwhile", f"{answered} of {len(probes)}")
        r.add("ops", "/alive median / max (ms)", f"{statistics.median(ms):.1f} / {ms[-1]:.1f}")
        r.figures["ops_alive_max_ms"] = ms[-1]
        r.check(statuses == {"line": 400, "header": 400}, f"ops: oversized requests answered {statuses}")
        r.check(held < self.app.descriptor.ops.request_timeout_s + 2, f"ops: slowloris held a connection {held:.1f} s")
        r.check(answered == len(probes), f"ops: /alive answered {answered} of {len(probes)} probes")

    async def _soak(self) -> None:
        p, r = self.plan, self.report
        process = psutil.Process()
        self._set_rate(p.rate_hz)
        await asyncio.sleep(min(2.0, p.soak_s / 5))  # warm-up: allocator pools, first batches
        samples = []
        end = time.monotonic() + p.soak_s
        while time.monotonic() < end:
            samples.append(process.memory_info().rss)
            await asyncio.sleep(0.5)
        await self._pause_and_drain()
        growth = 100.0 * (samples[-1] - samples[0]) / samples[0]
        r.add("soak", "seconds", p.soak_s)
        r.add("soak", "RSS first / last / max (MiB)",
              f"{samples[0] / 2**20:.1f} / {samples[-1] / 2**20:.1f} / {max(samples) / 2**20:.1f}")
        r.add("soak", "RSS growth (%)", round(growth, 2), "soak_rss_growth_pct")
        r.add("soak", "decisions answered in the whole run", len(self.answered), "answered_total")
        r.add("soak", "frames taken = decided + shed", self._books_balance("soak"))
