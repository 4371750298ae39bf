"""The ops endpoint under abuse: oversized request lines and headers, slowloris, a flood of idle
connections. /alive keeps answering, abusers are cut off and counted, nothing logs a traceback."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from xapp.chaos.http_attacks import idle_connections, oversized, probe_alive, slowloris
from xapp.ops.http import HttpLimits, OpsServer, Readiness
from xapp.ops.metrics import Metrics
from xapp.ops.redis_server import _ephemeral_floor, free_port

pytestmark = pytest.mark.timeout(60)


def serve(scenario, limits: HttpLimits = HttpLimits(max_connections=64, request_timeout_s=1.0),
          readiness: Readiness = Readiness(True)):
    async def main():
        metrics = Metrics()
        server = OpsServer(metrics, lambda: readiness, host="127.0.0.1", port=0, limits=limits)
        await server.start()
        try:
            await scenario(server, metrics)
        finally:
            await server.aclose()

    asyncio.run(main())


def refused(metrics: Metrics, reason: str) -> float:
    return metrics.registry.get_sample_value("xapp_ops_http_refused_total", {"reason": reason}) or 0.0


def no_tracebacks(caplog) -> None:
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []


@pytest.mark.parametrize("where", ["line", "header"])
def test_one_megabyte_request_line_or_header_gets_a_400_and_one_log_line(where, caplog):
    async def scenario(server, metrics):
        with caplog.at_level(logging.INFO):
            assert await oversized(server.port, where) == 400
            assert (await probe_alive(server.port))[0] == 200
        assert refused(metrics, "bad_request") == 1
        no_tracebacks(caplog)

    serve(scenario)


def test_slowloris_is_cut_off_and_alive_answers_meanwhile(caplog):
    async def scenario(server, metrics):
        with caplog.at_level(logging.INFO):
            loris = asyncio.create_task(slowloris(server.port, seconds=10.0))
            await asyncio.sleep(0.3)
            assert (await probe_alive(server.port))[0] == 200
            held = await loris
        assert held < 5.0, f"slowloris connection held {held:.1f} s"  # lifetime 1 s; 10 s if never cut
        assert refused(metrics, "expired") >= 1
        no_tracebacks(caplog)

    serve(scenario)


def test_a_thousand_idle_connections_do_not_lock_out_the_probe(caplog):
    async def scenario(server, metrics):
        with caplog.at_level(logging.INFO):
            async with idle_connections(server.port, 1000) as opened:
                assert opened == 1000
                await asyncio.sleep(0.1)
                assert server.open_connections <= 64
                status, _ = await probe_alive(server.port)
                assert status == 200
        assert refused(metrics, "evicted") >= 1000 - 64
        no_tracebacks(caplog)

    serve(scenario, HttpLimits(max_connections=64, request_timeout_s=30.0))


def test_ready_body_names_what_is_not_ready():
    async def scenario(server, metrics):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /ric/v1/health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw = await reader.read()
        writer.close()
        assert raw.startswith(b"HTTP/1.1 503") and b'"nodes_down": ["e2node-3"]' in raw

    serve(scenario, readiness=Readiness(False, {"nodes_down": ["e2node-3"]}))


def test_free_ports_are_distinct_bindable_and_below_the_kernels_ephemeral_range():
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(port < _ephemeral_floor() for port in ports)
    for port in ports[:5]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
