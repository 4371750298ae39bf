import asyncio
import io
import json
import logging

from xapp.ops.http import OpsServer, Readiness
from xapp.ops.logging import configure
from xapp.ops.metrics import Metrics


async def get(port: int, path: str, method: str = "GET") -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body


def test_health_and_metrics_endpoints():
    async def scenario():
        metrics = Metrics()
        state = {"ready": False}
        server = OpsServer(metrics, lambda: Readiness(state["ready"]), host="127.0.0.1", port=0)
        await server.start()
        try:
            assert (await get(server.port, "/ric/v1/health/alive"))[0] == 200
            assert (await get(server.port, "/ric/v1/health/ready"))[0] == 503
            state["ready"] = True
            status, body = await get(server.port, "/ric/v1/health/ready")
            assert status == 200 and json.loads(body)["status"] == "ready"
            metrics.frames_rejected.labels("e2node-0", "non_finite").inc()
            status, body = await get(server.port, "/metrics")
            assert status == 200
            assert 'xapp_frames_rejected_total{node="e2node-0",reason="non_finite"} 1.0' in body
            assert (await get(server.port, "/nope"))[0] == 404
            assert (await get(server.port, "/metrics", "POST"))[0] == 405
        finally:
            await server.aclose()

    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_json_logs_carry_extra_fields():
    stream = io.StringIO()
    configure("INFO", stream)
    logging.getLogger("xapp.test").info("frame rejected", extra={"node": "e2node-1", "reason": "shape"})
    logging.getLogger("xapp.test").debug("not shown")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["msg"] == "frame rejected" and entry["node"] == "e2node-1" and entry["level"] == "INFO"


def test_the_demo_summary_says_why_frames_were_shed():
    from xapp.harness.demo import format_summary

    metrics = Metrics()
    metrics.frames_shed.labels("beam", "deadline").inc(7)
    metrics.frames_shed.labels("modulation", "deadline").inc(3)
    metrics.frames_shed.labels("beam", "queue_full").inc(2)
    metrics.frames_shed.labels("beam", "closed")  # a series that never counted
    assert metrics.by_label("xapp_frames_shed_total", "reason") == {"deadline": 10, "queue_full": 2}
    summary = {"seconds": 1.0, "tasks": {}, "gflops_per_frame": None, "frames_in": 100, "rejected": 0,
               "shed": 12, "shed_by_reason": metrics.by_label("xapp_frames_shed_total", "reason"), "reconnects": 0,
               "controls_sent": 0, "stage_mean_ms": {"queue": 1.0, "compute": 2.0, "indication_to_decision": 3.0},
               "mean_batch": 4.0, "redis": {}}
    assert "shed 12 (deadline 10, queue_full 2), reconnects 0" in format_summary(summary)
    assert "shed 0, reconnects 0" in format_summary({**summary, "shed": 0, "shed_by_reason": {}})
