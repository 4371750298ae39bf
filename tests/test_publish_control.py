"""E2 Control from decisions, against a real simulated node over gRPC."""

import asyncio
import time

from conftest import single_frame_nodes
from polling import until

from xapp.e2.client import E2Subscriber
from xapp.e2.types import AppIdentity, FrameLimits
from xapp.ops.metrics import Metrics
from xapp.publish.control import ControlLoop
from xapp.vocab import Decision


def decision(node: str, cell: str, task: str, label: str, index: int) -> Decision:
    now = time.time_ns()
    return Decision(node, task, label, index, 0.9, 2, 0.2, 1, cell, now, now, now)


def test_controls_follow_changes_only_and_end_on_the_latest_decision(tiny_model):
    async def scenario():
        node = single_frame_nodes(tiny_model[1], count=1)[0]
        await node.start()
        metrics = Metrics()
        sub = E2Subscriber(node.endpoint, AppIdentity("test", "test-0"), lambda r: None, metrics,
                           FrameLimits(262144, {}, 100.0))

        async def send(node_id, message, cell_id, task):
            assert node_id == node.node_id
            return await sub.control(message, cell_id=cell_id, task=task)

        loop = ControlLoop(send)
        loop.configure({"beam": ["beam_switch"], "interference": ["interference_mitigation"], "modulation": []})
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
