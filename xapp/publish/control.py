"""Closing the loop: E2 Control back to the node when a controlling task's decision changes.

beam_switch              beam task: switch the cell to the newly best beam
interference_mitigation  interference task: mitigate the detected interferer (or lift it on `none`)

At most one Control is in flight per (node, cell, task); a decision that changes again meanwhile is
sent when the previous one completes, so the node always ends on the latest decision. A task's
`min_confidence` keeps the cell as it is on decisions less sure than that (they are still published):
the node ends on the latest decision that was sure enough.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from xapp.e2.gen import e2sm_iq_pb2 as iq_pb2
from xapp.ops.metrics import Metrics
from xapp.vocab import Decision, DecisionBatch, as_batch

log = logging.getLogger(__name__)

MITIGATION = {
    "none": iq_pb2.MITIGATION_ACTION_NONE,
    "tone": iq_pb2.MITIGATION_ACTION_NOTCH_FILTER,
    "chirp": iq_pb2.MITIGATION_ACTION_BLANKING,  # pulsed radar: blank the pulses
    "fsk_hopper": iq_pb2.MITIGATION_ACTION_NOTCH_FILTER,  # narrow hops: notch them
    "ofdm": iq_pb2.MITIGATION_ACTION_FREQUENCY_HOP,  # wideband bursts: move away
    "oqpsk": iq_pb2.MITIGATION_ACTION_FREQUENCY_HOP,
}
CONTROL_KINDS = {"beam_switch": "beam", "interference_mitigation": "interference"}


@dataclass(frozen=True)
class ControlRule:
    """What one task's decisions may do: the Control kinds enabled for it, and the confidence under
    which a decision is not acted on."""

    kinds: tuple[str, ...]
    min_confidence: float = 0.0


Send = Callable[[str, iq_pb2.ControlMessage, str, str], Awaitable[iq_pb2.ControlOutcome]]
Key = tuple[str, str, str]  # node, cell, task


def control_message(d: Decision) -> iq_pb2.ControlMessage:
    if d.task == "beam":
        return iq_pb2.ControlMessage(beam_switch=iq_pb2.BeamSwitch(beam_index=d.class_index))
    if d.task == "interference":
        action = MITIGATION.get(d.label, iq_pb2.MITIGATION_ACTION_NONE)
        return iq_pb2.ControlMessage(interference_mitigation=iq_pb2.InterferenceMitigation(kind=d.label, action=action))
    raise ValueError(f"task {d.task} has no E2 Control")


class ControlLoop:
    """`send(node_id, message, cell_id, task)` delivers one Control (E2Subscriber.control)."""

    def __init__(self, send: Send, metrics: Metrics) -> None:
        self._send = send
        self._metrics = metrics
        self._tasks: frozenset[str] = frozenset()
        self._min_confidence: dict[str, float] = {}
        self._sent: dict[Key, str] = {}
        self._wanted: dict[Key, Decision] = {}
        self._inflight: dict[Key, asyncio.Task] = {}

    def configure(self, rules: Mapping[str, ControlRule]) -> None:
        """`rules`: task -> its ControlRule, from the descriptor."""
        self._tasks = frozenset(task for task, rule in rules.items()
                                if any(CONTROL_KINDS.get(k) == task for k in rule.kinds))
        self._min_confidence = {task: rules[task].min_confidence for task in self._tasks}

    def observe(self, decisions: DecisionBatch | Iterable[Decision]) -> None:
        for d in as_batch(decisions).of_tasks(self._tasks):
            if d.confidence < self._min_confidence[d.task]:
                self._metrics.child(self._metrics.controls_withheld, d.task).inc()
                continue
            key = (d.node_id, d.cell_id, d.task)
            if self._applied(key) == d.label and key not in self._inflight:
                continue
            self._wanted[key] = d
            if key not in self._inflight:
                self._inflight[key] = asyncio.get_running_loop().create_task(self._drain(key))

    async def aclose(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        await asyncio.gather(*self._inflight.values(), return_exceptions=True)

    def _applied(self, key: Key) -> str | None:
        # Before any Control an interference-free cell needs nothing lifted; a beam is always set once.
        return self._sent.get(key, "none" if key[2] == "interference" else None)

    async def _drain(self, key: Key) -> None:
        try:
            while (d := self._wanted.get(key)) is not None and self._applied(key) != d.label:
                try:
                    outcome = await self._send(d.node_id, control_message(d), d.cell_id, d.task)
                except Exception as exc:  # noqa: BLE001 - counted by the sender; the next change retries
                    log.warning("e2 control failed: %s", exc, extra={"node": d.node_id, "task": d.task})
                    return
                if not outcome.success:
                    log.warning("e2 control refused: %s", outcome.detail, extra={"node": d.node_id, "task": d.task})
                    return
                self._sent[key] = d.label
        finally:
            self._inflight.pop(key, None)
