"""Interop with ONOS's own code (PyPI onos-api 0.10.31: betterproto messages, grpclib client and
server) on the other side of the wire, in a virtualenv of its own (tests/onos_e2t_peer.py says why):

- bytes: our four E2T messages decode with onos-api's classes to the same fields, and onos-api's
  own messages decode with ours to the same fields;
- onos-api's client subscribes to `xapp e2sim`, gets Indications that our E2SM-IQ decodes to the
  node's frames, is refused for a wrong service model, and switches the node's beam by Control;
- `xapp run` subscribes to an onos-e2t stand-in served with onos-api's messages by grpclib, makes
  decisions on the frames it relays and sends a Control that the server decodes.

The virtualenv is built once (pip install onos-api, ~15 s) under ~/.cache/xapp, or under
$XAPP_ONOS_PEER_VENV, and reused by later runs.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import write_descriptor

from xapp.data import TASKS
from xapp.e2 import e2sm_iq, messages
from xapp.e2.frames import IQ_DTYPE
from xapp.e2.gen import e2sm_iq_pb2 as iq_pb2
from xapp.e2.gen import e2t_pb2
from xapp.e2.sim import build_pools
from xapp.e2.types import AppIdentity, FrameLimits
from xapp.ops.redis_server import free_port
from xapp.vocab import NodeEndpoint

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ONOS_API = "onos-api==0.10.31"
PEER = Path(__file__).with_name("onos_e2t_peer.py")
XAPP = [sys.executable, "-m", "xapp"]
APP = AppIdentity("interop-xapp", "interop-xapp-0")


@pytest.fixture(scope="session")
def onos_python() -> Path:
    """The python of a virtualenv holding onos-api; built under a lock so parallel runs share it."""
    default = Path.home() / ".cache" / "xapp" / f"onos-api-0.10.31-py{sys.version_info.major}{sys.version_info.minor}"
    root = Path(os.environ.get("XAPP_ONOS_PEER_VENV", default))
    python, ready = root / "bin" / "python", root / ".ready"
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f"{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ready.exists():
            shutil.rmtree(root, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
            install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", ONOS_API],
                                     capture_output=True, text=True)
            assert install.returncode == 0, f"cannot install {ONOS_API} into {root}:\n{install.stderr[-3000:]}"
            ready.write_text(ONOS_API)
    return python


def run_peer(python: Path, mode: str, cfg: dict, tmp_path: Path, timeout: float = 60) -> dict:
    path = tmp_path / f"{mode}.json"
    path.write_text(json.dumps(cfg))
    done = subprocess.run([str(python), str(PEER), mode, str(path)], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def fields(message) -> dict:
    """A protobuf message as the peer shows a betterproto one: bytes hex, enums numbers, durations
    in seconds, only the set member of a oneof."""
    out = {}
    for field in message.DESCRIPTOR.fields:
        oneof = field.containing_oneof
        if oneof is not None and message.WhichOneof(oneof.name) != field.name:
            continue
        value = getattr(message, field.name)
        out[field.name] = [plain(v) for v in value] if field.is_repeated else plain(value)
    return out


def plain(value):
    if hasattr(value, "DESCRIPTOR"):
        if value.DESCRIPTOR.full_name == "google.protobuf.Duration":
            return value.ToTimedelta().total_seconds()
        return fields(value)
    return value.hex() if isinstance(value, bytes) else value


def sm_bytes() -> dict[str, str]:
    """One of each E2SM-IQ payload, hex."""
    header = iq_pb2.IndicationHeader(node_id="e2:1/5153", cell_id="cell-3", sequence_number=42,
                                     timestamp_ns=1_700_000_000, sample_rate_hz=1e6, center_frequency_hz=3.5e9,
                                     antennas=16, samples=64, task="beam")
    payloads = {
        "event_trigger": e2sm_iq.event_trigger(20),
        "indication_header": header.SerializeToString(),
        "indication_message": e2sm_iq.indication_message(b"\x00\x01" * 8, "beam05", 12.5),
        "control_header": e2sm_iq.control_header("cell-3", "beam"),
        "control_message": iq_pb2.ControlMessage(beam_switch=iq_pb2.BeamSwitch(beam_index=5)).SerializeToString(),
        "control_outcome": e2sm_iq.control_outcome(True, "serving beam 0 -> 5"),
    }
    out = {k: v.hex() for k, v in payloads.items()}
    out["actions"] = [e2sm_iq.action_definition("beam", (16, 64)).hex(), e2sm_iq.action_definition("modulation").hex()]
    return out


def our_messages(sm: dict) -> list:
    """SubscribeRequest, SubscribeResponse (ack, indication) and ControlRequest from our own
    builders, plus the ControlResponse, with every field the ONOS messages have set."""
    raw = {k: bytes.fromhex(v) for k, v in sm.items() if k != "actions"}
    limits = FrameLimits(max_frame_bytes=1 << 16, tasks={"beam": (16, 64), "modulation": (1, 1024)}, deadline_ms=50,
                         reporting_period_ms=20)
    subscribe = messages.subscribe_request(APP, "e2:1/5153", "interop-xapp-0/e2:1/5153", limits)
    subscribe.transaction_timeout.FromSeconds(3)
    subscribe.subscription.actions[0].subsequent_action.type = e2t_pb2.SUBSEQUENT_ACTION_TYPE_WAIT
    subscribe.subscription.actions[0].subsequent_action.time_to_wait = e2t_pb2.TIME_TO_WAIT_W2S
    indication = messages.indication(raw["indication_header"], raw["indication_message"])
    indication.indication.call_process_id = b"\x07"
    control = messages.control_request(APP, "e2:1/5153", iq_pb2.ControlMessage.FromString(raw["control_message"]),
                                       "cell-3", "beam")
    control.call_process_id = b"\x08\x09"
    outcome = messages.control_response(iq_pb2.ControlOutcome.FromString(raw["control_outcome"]))
    return [subscribe, messages.ack("channel-1"), indication, control, outcome]


def test_our_bytes_decode_with_onos_api_and_onos_api_bytes_decode_with_ours(onos_python, tmp_path):
    sm = sm_bytes()
    ours = our_messages(sm)
    result = run_peer(onos_python, "codec", {
        "decode": [{"type": type(m).__name__, "hex": m.SerializeToString().hex()} for m in ours], "sm": sm}, tmp_path)

    assert result["decoded"] == [fields(m) for m in ours]
    assert result["decoded"][1]["ack"] == {"channel_id": "channel-1"}  # oneof member 2, not our old 1
    assert result["decoded"][2]["indication"]["header"] == sm["indication_header"]
    assert result["decoded"][3]["message"]["payload"] == sm["control_message"]

    native = result["native"]
    assert [n["type"] for n in native] == [type(m).__name__ for m in ours]
    for n in native:
        decoded = getattr(e2t_pb2, n["type"]).FromString(bytes.fromhex(n["hex"]))
        assert fields(decoded) == n["fields"], n["type"]
    request, ack, indication, control, outcome = (
        getattr(e2t_pb2, n["type"]).FromString(bytes.fromhex(n["hex"])) for n in native)
    assert request.headers.service_model.name == e2sm_iq.NAME and request.transaction_timeout.ToMilliseconds() == 2250
    definitions = [e2sm_iq.decode(iq_pb2.ActionDefinition, a.payload) for a in request.subscription.actions]
    assert [(d.task, d.antennas, d.samples) for d in definitions] == [("beam", 16, 64), ("modulation", 0, 0)]
    trigger = e2sm_iq.decode(iq_pb2.EventTriggerDefinition, request.subscription.event_trigger.payload)
    assert trigger.reporting_period_ms == 20
    assert ack.WhichOneof("message") == "ack" and ack.headers.encoding == e2t_pb2.ASN1_PER
    assert e2sm_iq.decode(iq_pb2.IndicationHeader, indication.indication.header).sequence_number == 42
    assert e2sm_iq.decode(iq_pb2.IndicationMessage, indication.indication.payload).label == "beam05"
    assert e2sm_iq.decode(iq_pb2.ControlMessage, control.message.payload).beam_switch.beam_index == 5
    assert e2sm_iq.decode(iq_pb2.ControlOutcome, outcome.outcome.payload).success


def test_onos_api_client_subscribes_to_e2sim_and_controls_it(onos_python, tmp_path):
    port = free_port()
    tasks, pool, seed = ("modulation", "beam"), 4, 5
    sim = subprocess.Popen([*XAPP, "e2sim", "--nodes", "1", "--base-port", str(port), "--rate", "200", "--tasks",
                            ",".join(tasks), "--pool", str(pool), "--seed", str(seed)],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in sim.stdout:
            if line.startswith("e2sim: ready"):
                break
        else:
            pytest.fail(f"e2sim did not start: {sim.stderr.read()[-2000:]}")
        result = run_peer(onos_python, "subscribe", {
            "host": "127.0.0.1", "port": port, "node_id": "e2node-0", "transaction_id": "onos-tx",
            "app_id": "onos-xapp", "app_instance_id": "onos-xapp-0", "service_model": [e2sm_iq.NAME, e2sm_iq.VERSION],
            "wrong_service_model": [e2sm_iq.NAME, "v0"], "count": 6,
            "event_trigger": e2sm_iq.event_trigger(20).hex(),
            "actions": [e2sm_iq.action_definition("beam", (16, 64)).hex()],
            "control_header": e2sm_iq.control_header("e2node-0-cell0", "beam").hex(),
            "control_message": iq_pb2.ControlMessage(beam_switch=iq_pb2.BeamSwitch(beam_index=5))
            .SerializeToString().hex(),
        }, tmp_path)
    finally:
        sim.send_signal(signal.SIGINT)
        out, err = sim.communicate(timeout=30)
    assert sim.returncode == 0, err[-2000:]

    first, *rest = result["responses"]
    assert first["headers"] == {"encoding": e2t_pb2.PROTO} and first["ack"]["channel_id"].startswith("e2node-0/onos-tx")
    beams = build_pools(tasks, pool, seed)["beam"]  # the node's frames: same generator, same seed
    truth = {frame.astype(IQ_DTYPE).tobytes(): label for frame, label in zip(beams.frames, beams.labels)}
    seqs = []
    for response in rest:
        header = e2sm_iq.decode(iq_pb2.IndicationHeader, bytes.fromhex(response["indication"]["header"]))
        message = e2sm_iq.decode(iq_pb2.IndicationMessage, bytes.fromhex(response["indication"]["payload"]))
        assert (header.node_id, header.task, header.antennas, header.samples) == ("e2node-0", "beam", 16, 64)
        assert truth[message.iq] == message.label  # the very frame the node holds, with its label
        seqs.append(header.sequence_number)
    assert len(seqs) == 6 and seqs == sorted(set(seqs))
    assert result["unsubscribe"] == {"headers": {"encoding": e2t_pb2.PROTO}}
    assert result["refused"]["status"] == "UNIMPLEMENTED"
    refusal = result["refused"]["message"]
    assert "'v0'" in refusal and f"{e2sm_iq.NAME} {e2sm_iq.VERSION}" in refusal
    outcome = e2sm_iq.decode(iq_pb2.ControlOutcome, bytes.fromhex(result["control"]["outcome"]["payload"]))
    assert outcome.success and outcome.detail == "serving beam 0 -> 5"
    assert "1 controls applied, serving beam 5" in out


async def read_event(stream: asyncio.StreamReader, key: str, timeout: float) -> dict:
    give_up = time.monotonic() + timeout
    while True:
        line = await asyncio.wait_for(stream.readline(), max(0.1, give_up - time.monotonic()))
        assert line, f"the ONOS peer ended before reporting {key}"
        event = json.loads(line)
        if key in event:
            return event[key]


def test_xapp_run_subscribes_to_an_onos_api_server_and_controls_through_it(
        onos_python, tiny_model, redis_url, tmp_path):
    model_dir, pools = tiny_model
    beam = pools["beam"]
    label = beam.labels[1]
    frame = beam.frames[1].astype(IQ_DTYPE).tobytes()
    port = free_port()
    cfg = tmp_path / "serve.json"
    cfg.write_text(json.dumps({"host": "127.0.0.1", "port": port,
                               "control_outcome": e2sm_iq.control_outcome(True, "applied").hex()}))
    descriptor = write_descriptor(model_dir, tmp_path / "descriptors" / "xapp.yaml",
                                  [NodeEndpoint("e2node-0", f"127.0.0.1:{port}")],
                                  f"tcp://127.0.0.1:{free_port()}", redis_url, free_port())

    async def scenario() -> tuple[dict, dict, dict, bytes]:
        peer = await asyncio.create_subprocess_exec(str(onos_python), str(PEER), "serve", str(cfg),
                                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        run = None
        try:
            await read_event(peer.stdout, "listening", 30)
            run = await asyncio.create_subprocess_exec(
                *XAPP, "run", "--descriptor", str(descriptor), "--threads", "1",
                stderr=subprocess.PIPE, env={**os.environ, "XAPP_SHARD_COUNT": "1"})
            subscribed = await read_event(peer.stdout, "subscribe", 120)
            control = asyncio.create_task(read_event(peer.stdout, "control", 60))
            seq = 0
            while not control.done():  # the E2 node behind onos-e2t: fresh E2SM-IQ frames at 20 Hz
                seq += 1
                header = iq_pb2.IndicationHeader(node_id="e2node-0", cell_id="cell-7", sequence_number=seq,
                                                 timestamp_ns=time.time_ns(), sample_rate_hz=1e6,
                                                 center_frequency_hz=3.5e9, antennas=16, samples=64, task="beam")
                line = {"header": header.SerializeToString().hex(), "payload": e2sm_iq.indication_message(frame).hex()}
                peer.stdin.write((json.dumps(line) + "\n").encode())
                await peer.stdin.drain()
                await asyncio.wait([control], timeout=0.05)
            controlled = control.result()
            run.send_signal(signal.SIGINT)
            _, err = await asyncio.wait_for(run.communicate(), 60)
            unsubscribed = await read_event(peer.stdout, "unsubscribe", 10)
            return subscribed, controlled, unsubscribed, err
        finally:
            if run is not None and run.returncode is None:
                run.kill()
                await run.wait()
            peer.stdin.close()
            await asyncio.wait_for(peer.wait(), 30)

    subscribed, controlled, unsubscribed, err = asyncio.run(scenario())

    identity = yaml.safe_load(descriptor.read_text())["xapp"]
    headers = {"app_id": identity["app_id"], "app_instance_id": identity["instance_id"], "e2_node_id": "e2node-0",
               "service_model": {"name": e2sm_iq.NAME, "version": e2sm_iq.VERSION}, "encoding": e2t_pb2.PROTO}
    assert subscribed["headers"] == headers
    spec = subscribed["subscription"]
    trigger = e2sm_iq.decode(iq_pb2.EventTriggerDefinition, bytes.fromhex(spec["event_trigger"]["payload"]))
    assert trigger.reporting_period_ms == 0
    definitions = [e2sm_iq.decode(iq_pb2.ActionDefinition, bytes.fromhex(a["payload"])) for a in spec["actions"]]
    assert sorted((d.task, d.antennas, d.samples) for d in definitions) == [("beam", 16, 64), ("modulation", 1, 1024)]
    assert all(a["type"] == e2t_pb2.ACTION_TYPE_REPORT for a in spec["actions"])

    assert controlled["headers"] == headers
    control_header = e2sm_iq.decode(iq_pb2.ControlHeader, bytes.fromhex(controlled["message"]["header"]))
    assert (control_header.cell_id, control_header.task) == ("cell-7", "beam")
    switch = e2sm_iq.decode(iq_pb2.ControlMessage, bytes.fromhex(controlled["message"]["payload"]))
    assert switch.beam_switch.beam_index == TASKS["beam"].classes.index(label)  # the decision on the relayed frame
    assert unsubscribed["headers"] == headers and unsubscribed["transaction_id"] == subscribed["transaction_id"]
    assert b'"xapp stopped"' in err
