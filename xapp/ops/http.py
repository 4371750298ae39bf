"""The xApp's ops endpoints on aiohttp: RIC health probes and Prometheus metrics.

GET /ric/v1/health/alive  200 while the process serves requests
GET /ric/v1/health/ready  200 when the readiness check passes, else 503; the JSON body names what is
                          not ready (model loading, nodes whose subscription is down too long)
GET /metrics              Prometheus text format

aiohttp parses the requests and bounds request lines and headers. Around it, every connection has
an absolute lifetime (a slow or idle client cannot hold one) and the number of open connections is
capped: a new connection beyond the cap closes the least recently active one, so a flood of idle
connections never locks out the kubelet's probe.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST

from xapp.ops.metrics import Metrics

log = logging.getLogger(__name__)

ALIVE = "/ric/v1/health/alive"
READY = "/ric/v1/health/ready"
METRICS = "/metrics"
MAX_LINE_BYTES = 8190  # request line and each header line
MAX_HEADERS = 64


@dataclass(frozen=True)
class Readiness:
    ready: bool
    detail: dict[str, Any] = field(default_factory=dict)  # merged into /ready's JSON body


@dataclass(frozen=True)
class HttpLimits:
    max_connections: int = 256
    request_timeout_s: float = 5.0


class OpsServer:
    def __init__(
        self,
        metrics: Metrics,
        readiness: Callable[[], Readiness],
        host: str = "127.0.0.1",
        port: int = 8080,
        limits: HttpLimits = HttpLimits(),
    ) -> None:
        self._metrics = metrics
        self._readiness = readiness
        self._host = host
        self._port = port
        self._limits = limits
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self._connections: OrderedDict[asyncio.BaseTransport, None] = OrderedDict()  # least recently active first

    @property
    def port(self) -> int:
        """The bound port (useful when constructed with port 0)."""
        if self._server is None:
            raise RuntimeError("ops server not started")
        return self._server.sockets[0].getsockname()[1]

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", ALIVE, self._alive)
        app.router.add_route("*", READY, self._ready)
        app.router.add_route("*", METRICS, self._metrics_text)
        runner = web.AppRunner(
            app,
            access_log=None,
            keepalive_timeout=self._limits.request_timeout_s,
            max_line_size=MAX_LINE_BYTES,
            max_field_size=MAX_LINE_BYTES,
            max_headers=MAX_HEADERS,
            handle_signals=False,
            shutdown_timeout=1.0,
            logger=_RequestErrorLog(self._metrics),
        )
        await runner.setup()
        handler = runner.server
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _GuardedConnection(handler(), self), self._host, self._port, backlog=1024
        )
        self._runner = runner
        log.info("ops http listening", extra={"host": self._host, "port": self.port})

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            for transport in list(self._connections):
                transport.close()
            await self._server.wait_closed()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- connection guard --------------------------------------------------------------------

    def _opened(self, transport: asyncio.BaseTransport) -> None:
        while len(self._connections) >= self._limits.max_connections:
            oldest, _ = self._connections.popitem(last=False)
            oldest.abort()
            self._metrics.http_refused.labels("evicted").inc()
        self._connections[transport] = None

    def _expired(self, transport: asyncio.BaseTransport) -> None:
        self._metrics.http_refused.labels("expired").inc()
        transport.abort()

    def _active(self, transport: asyncio.BaseTransport) -> None:
        if transport in self._connections:
            self._connections.move_to_end(transport)

    def _closed(self, transport: asyncio.BaseTransport) -> None:
        self._connections.pop(transport, None)

    # -- routes ------------------------------------------------------------------------------

    @staticmethod
    def _method_allowed(request: web.Request) -> web.Response | None:
        if request.method in ("GET", "HEAD"):
            return None
        return web.json_response({"error": f"{request.method} not allowed on {request.path}"}, status=405)

    async def _alive(self, request: web.Request) -> web.Response:
        return self._method_allowed(request) or web.json_response({"status": "alive"})

    async def _ready(self, request: web.Request) -> web.Response:
        refused = self._method_allowed(request)
        if refused is not None:
            return refused
        state = self._readiness()
        body = {"status": "ready" if state.ready else "not ready", **state.detail}
        return web.json_response(body, status=200 if state.ready else 503)

    async def _metrics_text(self, request: web.Request) -> web.Response:
        refused = self._method_allowed(request)
        if refused is not None:
            return refused
        return web.Response(body=self._metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})


class _RequestErrorLog(logging.LoggerAdapter):
    """aiohttp's logger for request errors. A malformed request (oversized line or header, missing
    Host...) is the client's fault: one counted warning line, no traceback. Anything else stays an
    error with its traceback."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(log, {})
        self._metrics = metrics

    def exception(self, msg: object, *args: object, exc_info: object = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            self._metrics.http_refused.labels("bad_request").inc()
            first_line = (exc_info.message or type(exc_info).__name__).strip().splitlines()[0]
            self.warning(f"{msg}: %s %s", *args, exc_info.code, first_line)
        else:
            self.error(msg, *args, exc_info=exc_info, **kwargs)


class _GuardedConnection(asyncio.Protocol):
    """aiohttp's protocol for one connection, with the server's lifetime and cap bookkeeping around it."""

    def __init__(self, inner: asyncio.Protocol, server: OpsServer) -> None:
        self._inner = inner
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._expiry: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._server._opened(transport)
        self._expiry = asyncio.get_running_loop().call_later(
            self._server._limits.request_timeout_s, self._server._expired, transport
        )
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._server._active(self._transport)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        self._server._closed(self._transport)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()
