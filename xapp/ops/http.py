"""The xApp's ops endpoints on plain asyncio: RIC health probes and Prometheus metrics.

GET /ric/v1/health/alive  200 while the process serves requests
GET /ric/v1/health/ready  200 when `ready()` is true (model loaded, >= 1 subscription up), else 503
GET /metrics              Prometheus text format
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Callable

from prometheus_client import CONTENT_TYPE_LATEST

from xapp.ops.metrics import Metrics

log = logging.getLogger(__name__)

ALIVE = "/ric/v1/health/alive"
READY = "/ric/v1/health/ready"
METRICS = "/metrics"
_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 400: "Bad Request", 503: "Service Unavailable"}


class OpsServer:
    def __init__(self, metrics: Metrics, ready: Callable[[], bool], host: str = "0.0.0.0", port: int = 8080) -> None:
        self._metrics = metrics
        self._ready = ready
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        """The bound port (useful when constructed with port 0)."""
        if self._server is None:
            raise RuntimeError("ops server not started")
        return self._server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self._host, self._port)
        log.info("ops http listening", extra={"host": self._host, "port": self.port})

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def route(self, method: str, path: str) -> tuple[int, str, bytes]:
        path = path.split("?", 1)[0]
        if path not in (ALIVE, READY, METRICS):
            return 404, "application/json", _json({"error": f"no route {path}"})
        if method not in ("GET", "HEAD"):
            return 405, "application/json", _json({"error": f"{method} not allowed on {path}"})
        if path == ALIVE:
            return 200, "application/json", _json({"status": "alive"})
        if path == READY:
            ok = self._ready()
            return (200 if ok else 503), "application/json", _json({"status": "ready" if ok else "not ready"})
        return 200, CONTENT_TYPE_LATEST, self._metrics.render()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), 5.0)
            while (await asyncio.wait_for(reader.readline(), 5.0)) not in (b"\r\n", b"\n", b""):
                pass  # headers are not needed by any route
            parts = request_line.decode("latin-1").split()
            if len(parts) != 3:
                status, ctype, body = 400, "application/json", _json({"error": "malformed request line"})
                method = "GET"
            else:
                method, path, _ = parts
                status, ctype, body = self.route(method, path)
            head = (
                f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1") + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError, UnicodeDecodeError):
            pass
        finally:
            writer.close()


def _json(obj: dict) -> bytes:
    return json.dumps(obj).encode()
