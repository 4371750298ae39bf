"""E2 Control from decisions, against a real simulated node over gRPC."""

import asyncio
import time

from conftest import single_frame_nodes
from polling import until

from xapp.e2.client import E2Subscriber
from xapp.e2.types import AppIdentity, FrameLimits
from xapp.ops.metrics import Metrics
from xapp.publish.control import ControlLoop, ControlRule
from xapp.vocab import Decision


def decision(node: str, cell: str, task: str, label: str, index: int, confidence: float = 0.9) -> Decision:
    now = time.time_ns()
    return Decision(node, task, label, index, confidence, 2, 0.2, 1, cell, now, now, now)


async def control_loop_on_node(tiny_model, metrics: Metrics):
    """A started simulated node, a subscriber to it and a ControlLoop that sends through it."""
    node = single_frame_nodes(tiny_model[1], count=1)[0]
    await node.start()
    sub = E2Subscriber(node.endpoint, AppIdentity("test", "test-0"), lambda r: None, metrics,
                       FrameLimits(262144, {}, 100.0))

    async def send(node_id, message, cell_id, task):
        assert node_id == node.node_id
        return await sub.control(message, cell_id=cell_id, task=task)

    return node, sub, ControlLoop(send, metrics)


def test_controls_follow_changes_only_and_end_on_the_latest_decision(tiny_model):
    async def scenario():
        metrics = Metrics()
        node, sub, loop = await control_loop_on_node(tiny_model, metrics)
        loop.configure({"beam": ControlRule(("beam_switch",)), "interference": ControlRule(("interference_mitigation",)),
                        "modulation": ControlRule(())})
        cell = node.cell_id
        loop.observe([decision(node.node_id, cell, "interference", "none", 0)])  # nothing to lift yet
        loop.observe([decision(node.node_id, cell, "modulation", "QPSK", 9)])  # no control for this task

        def beam(k: int) -> None:
            loop.observe([decision(node.node_id, cell, "beam", f"beam{k:02d}", k)])

        beam(3)
        await until(lambda: node.serving_beam == 3, "the node serving beam 3")
        beam(3)  # unchanged: no control
        beam(5)  # superseded before it is sent: coalesced into 7
        beam(7)
        loop.observe([decision(node.node_id, cell, "interference", "chirp", 2)])
        await until(lambda: node.serving_beam == 7 and "chirp" in node.mitigations, "beam 7 and the chirp mitigated")
        await loop.aclose()
        await node.stop()
        await sub.stop()
        return node, metrics

    node, metrics = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert node.serving_beam == 7
    assert node.mitigations == {"chirp": "MITIGATION_ACTION_BLANKING"}
    beams = [r.message.beam_switch.beam_index for r in node.controls if r.message.WhichOneof("kind") == "beam_switch"]
    assert beams == [3, 7]
    assert all(r.outcome.success for r in node.controls)
    assert len(node.controls) == len(beams) + 1


def test_decisions_under_min_confidence_are_not_acted_on_and_are_counted(tiny_model):
    async def scenario():
        metrics = Metrics()
        node, sub, loop = await control_loop_on_node(tiny_model, metrics)
        loop.configure({"beam": ControlRule(("beam_switch",), min_confidence=0.8)})
        cell = node.cell_id

        def beam(k: int, confidence: float) -> None:
            loop.observe([decision(node.node_id, cell, "beam", f"beam{k:02d}", k, confidence)])

        beam(3, 0.95)
        await until(lambda: node.serving_beam == 3, "the node serving beam 3")
        beam(9, 0.5)  # unsure: the cell stays on beam 3
        beam(9, 0.79)
        beam(5, 0.8)  # sure enough (the bound is inclusive)
        await until(lambda: node.serving_beam == 5, "the node serving beam 5")
        beam(11, 0.1)
        loop.configure({"beam": ControlRule(("beam_switch",))})  # a reload that lifts the bound
        beam(11, 0.1)
        await until(lambda: node.serving_beam == 11, "the node serving beam 11")
        await loop.aclose()
        await node.stop()
        await sub.stop()
        return node, metrics

    node, metrics = asyncio.run(asyncio.wait_for(scenario(), 60))
    beams = [r.message.beam_switch.beam_index for r in node.controls if r.message.WhichOneof("kind") == "beam_switch"]
    assert beams == [3, 5, 11]
    assert metrics.total("xapp_e2_controls_withheld_total") == 3
