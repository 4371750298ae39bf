"""The load side of `xapp demo` and `xapp bench` online: simulated E2 nodes and a decision listener
in a child process, so the xApp under test has its process (event loop, GIL, engine thread) to
itself, as it would in a RIC where the E2 nodes and the control loops live elsewhere.

The parent drives the child over a pipe: set the nodes' rate, start recording, collect what the
decisions received since said. Latency is the decision's own stamps (t_decision - t_indication,
both wall clock on this machine), so the listener's speed does not enter it.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection
from typing import NamedTuple

from xapp.vocab import NodeEndpoint


class Received(NamedTuple):
    """One decision as the listener saw it."""

    task: str
    latency_ms: float  # indication to decision
    gflops: float
    exit: int


class LoadGenError(Exception):
    """The load process failed to start or stopped answering."""


class LoadGenerator:
    """`count` simulated nodes serving `tasks` (paused until `set_rate`) and a listener on the
    xApp's ZMQ endpoint, in a spawned child process. Use as a context manager."""

    def __init__(self, count: int, tasks: Sequence[str], zmq_endpoint: str, timeout_s: float = 60.0,
                 samples: Mapping[str, int] | None = None) -> None:
        self._count = count
        self._tasks = list(tasks)
        self._samples = dict(samples or {})  # frame length per task where not its own (captures read in windows)
        self._zmq_endpoint = zmq_endpoint
        self._timeout_s = timeout_s
        self._conn: Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None
        self.endpoints: list[NodeEndpoint] = []

    def __enter__(self) -> LoadGenerator:
        context = multiprocessing.get_context("spawn")  # no fork of a process holding torch threads
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_child_main, args=(child, self._count, self._tasks, self._zmq_endpoint, self._samples), daemon=True,
            name="xapp-loadgen",
        )
        self._process.start()
        child.close()
        reply = self._receive()
        self.endpoints = [NodeEndpoint(node_id, address) for node_id, address in reply]
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is None:
            return
        try:
            self._conn.send(("stop",))
        except (BrokenPipeError, OSError):
            pass
        self._process.join(10.0)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._conn.close()
        self._process = None

    @property
    def pid(self) -> int:
        """The load process's id (for its CPU use beside the xApp's)."""
        if self._process is None or self._process.pid is None:
            raise LoadGenError("load process not running")
        return self._process.pid

    def set_rate(self, hz_per_node: float) -> None:
        """Frames per second per node (Indications per second times frames per Indication)."""
        self._call("rate", hz_per_node)

    def set_frames_per_indication(self, frames: int) -> None:
        """Frames each Indication carries from now on (1: the single-frame form); the frame rate stays."""
        self._call("frames", frames)

    def record(self) -> None:
        """Start keeping decisions (and forget earlier ones)."""
        self._call("record")

    def sent(self) -> int:
        """Frames the simulated nodes sent since `record` (what was offered in fact, whatever the pacing)."""
        return self._call("sent")

    def collect(self) -> list[Received]:
        """The decisions received since `record`."""
        return self._call("collect")

    def _call(self, *command: object):
        self._conn.send(command)
        return self._receive()

    def _receive(self):
        if not self._conn.poll(self._timeout_s):
            raise LoadGenError(f"load process silent for {self._timeout_s:.0f} s")
        try:
            status, value = self._conn.recv()
        except EOFError:
            raise LoadGenError("load process exited") from None
        if status != "ok":
            raise LoadGenError(f"load process: {value}")
        return value


def _child_main(conn: Connection, count: int, tasks: list[str], zmq_endpoint: str, samples: dict[str, int]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's; it stops us over the pipe
    try:
        asyncio.run(_serve(conn, count, tasks, zmq_endpoint, samples))
    except Exception as exc:  # report any failure to the parent instead of a silent exit
        conn.send(("error", f"{type(exc).__name__}: {exc}"))


async def _serve(conn: Connection, count: int, tasks: list[str], zmq_endpoint: str, samples: dict[str, int]) -> None:
    from xapp.e2.sim import SimulatedNodes
    from xapp.publish.listen import DecisionListener

    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    received: list[Received] | None = None
    rate, frames = 0.0, 1  # frames per second per node, frames per Indication
    sent_before = 0  # frames the nodes had sent when recording started

    async with SimulatedNodes(count, tasks=tasks, rate_hz=0.0, samples=samples) as nodes:
        listener = DecisionListener(zmq_endpoint)

        async def listen() -> None:
            while True:
                burst = await listener.recv_queued()
                if received is not None:
                    received.extend(Received(d.task, (d.t_decision_ns - d.t_indication_ns) / 1e6, d.gflops, d.exit_layer)
                                    for _, d in burst)

        def pace() -> None:
            for node in nodes:
                node.frames_per_indication = frames
                node.rate_hz = rate / frames

        def on_command() -> None:
            nonlocal received, rate, frames, sent_before
            try:
                command, *args = conn.recv()
            except EOFError:  # the parent is gone
                stopped.set()
                return
            if command in ("rate", "frames"):
                if command == "rate":
                    rate = float(args[0])
                else:
                    frames = int(args[0])
                pace()
                conn.send(("ok", None))
            elif command == "record":
                received = []
                sent_before = sum(node.frames_sent for node in nodes)
                conn.send(("ok", None))
            elif command == "sent":
                conn.send(("ok", sum(node.frames_sent for node in nodes) - sent_before))
            elif command == "collect":
                conn.send(("ok", received or []))
                received = None
            elif command == "stop":
                stopped.set()
            else:
                conn.send(("error", f"unknown command {command!r}"))

        listening = asyncio.create_task(listen())
        loop.add_reader(conn.fileno(), on_command)
        conn.send(("ok", [(e.id, e.address) for e in nodes.endpoints]))
        try:
            await stopped.wait()
        finally:
            loop.remove_reader(conn.fileno())
            listening.cancel()
            listener.close()

