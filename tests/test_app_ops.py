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
