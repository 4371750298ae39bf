"""TLS on every link, with certificates made at test time: mTLS between the E2 subscriber and a
node (a real handshake; a client without a certificate and a server under the wrong CA refused),
`xapp run` against `xapp e2sim` over mTLS, Redis over TLS with AUTH, ZMQ with CURVE."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import ssl
import subprocess
import sys
import time

import pytest
import redis
import yaml
import zmq
import zmq.auth
from conftest import write_descriptor
from polling import until
from tlscerts import CertAuthority

from xapp.e2.client import E2Subscriber
from xapp.e2.sim import SimulatedNode, build_pools
from xapp.e2.tls import ServerTls
from xapp.e2.types import AppIdentity, Backoff, FrameLimits
from xapp.ops.metrics import Metrics
from xapp.ops.redis_server import RedisServer, free_port
from xapp.publish.listen import CurveClient, DecisionListener
from xapp.publish.redis_pub import RedisPublisher, hash_key
from xapp.publish.zmq_pub import ZmqPublisher
from xapp.vocab import Decision, NodeEndpoint, TlsFiles, ZmqCurve

pytestmark = pytest.mark.e2e  # the slow end-to-end tier: real processes, sockets, the whole xApp

SHAPES = {"modulation": (1, 1024), "beam": (16, 64)}
LIMITS = FrameLimits(64 * 1024, SHAPES, 100)
APP = AppIdentity("test-xapp", "test-xapp-0")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca, other = CertAuthority(d, "ca"), CertAuthority(d, "other-ca")
    return {"ca": ca.pem.cert, "other_ca": other.pem.cert, "server": ca.issue("server", True),
            "client": ca.issue("client", False), "impostor": other.issue("impostor", True)}


@pytest.fixture(scope="module")
def pools():
    return build_pools(list(SHAPES), 8, seed=3)


async def subscribe(node: SimulatedNode, tls: TlsFiles | None, seconds: float = 1.5) -> tuple[int, Metrics]:
    """Frames received over `seconds` by a subscriber with `tls`, and its metrics."""
    got, metrics = [], Metrics()
    sub = E2Subscriber(node.endpoint, APP, got.append, metrics, LIMITS,
                       Backoff(20, 200, 0.2, random.Random(0)), tls=tls)
    task = asyncio.create_task(sub.run())
    await asyncio.sleep(seconds)
    await sub.stop()
    await task
    return len(got), metrics


def run_with_node(pools, server: ServerTls | None, tls: TlsFiles | None) -> tuple[int, Metrics]:
    async def scenario():
        node = SimulatedNode("e2node-0", pools, rate_hz=100.0, tls=server)
        await node.start()
        try:
            return await subscribe(node, tls)
        finally:
            await node.stop()

    return asyncio.run(scenario())


def test_mtls_handshake_streams_frames(pki, pools):
    s, c = pki["server"], pki["client"]
    frames, _ = run_with_node(pools, ServerTls(s.cert, s.key, pki["ca"]), TlsFiles(pki["ca"], c.cert, c.key))
    assert frames > 10


def test_client_without_certificate_is_refused_by_an_mtls_node(pki, pools):
    s = pki["server"]
    frames, metrics = run_with_node(pools, ServerTls(s.cert, s.key, pki["ca"]), TlsFiles(pki["ca"]))
    assert frames == 0
    assert metrics.registry.get_sample_value("xapp_e2_resubscribes_total", {"node": "e2node-0", "cause": "rpc_error"}) >= 2


def test_server_under_the_wrong_ca_is_refused(pki, pools):
    s, c = pki["impostor"], pki["client"]
    frames, _ = run_with_node(pools, ServerTls(s.cert, s.key), TlsFiles(pki["ca"], c.cert, c.key))
    assert frames == 0


def test_plaintext_client_is_refused_by_a_tls_node(pki, pools):
    s = pki["server"]
    frames, _ = run_with_node(pools, ServerTls(s.cert, s.key, pki["ca"]), None)
    assert frames == 0


XAPP = [sys.executable, "-m", "xapp"]


async def ready_status(port: int) -> int:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return 0
    writer.write(b"GET /ric/v1/health/ready HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    raw = await reader.read()
    writer.close()
    return int(raw.split()[1]) if raw else 0


@pytest.mark.timeout(180)
@pytest.mark.parametrize("client", ["mtls", "plaintext", "wrong_ca"])
def test_xapp_run_against_xapp_e2sim_over_mtls(client, pki, tiny_model, redis_url, tmp_path):
    """`xapp run` and `xapp e2sim` as separate processes: with the right certificates decisions
    flow; a plaintext client or one trusting another CA never gets a subscription."""
    model_dir, _ = tiny_model
    port, zmq_endpoint, http_port = free_port(), f"tcp://127.0.0.1:{free_port()}", free_port()
    path = write_descriptor(model_dir, tmp_path / "descriptors" / "xapp.yaml", [NodeEndpoint("e2node-0", f"127.0.0.1:{port}")],
                            zmq_endpoint, redis_url, http_port)
    doc = yaml.safe_load(path.read_text())
    c = pki["client"]
    if client != "plaintext":
        doc["e2"]["tls"] = {"ca": str(pki["ca"] if client == "mtls" else pki["other_ca"]), "cert": str(c.cert), "key": str(c.key)}
    path.write_text(yaml.safe_dump(doc))
    s = pki["server"]

    async def scenario():
        sim = await asyncio.create_subprocess_exec(
            *XAPP, "e2sim", "--nodes", "1", "--base-port", str(port), "--tasks", "modulation,beam", "--rate", "20",
            "--pool", "4", "--tls-cert", str(s.cert), "--tls-key", str(s.key), "--tls-client-ca", str(pki["ca"]),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        run = await asyncio.create_subprocess_exec(*XAPP, "run", "--descriptor", str(path), "--threads", "1",
                                                   stderr=subprocess.PIPE, env={**os.environ, "XAPP_SHARD_COUNT": "1"})
        listener = DecisionListener(zmq_endpoint)

        async def ready_is(status: int) -> bool:
            assert run.returncode is None
            return await ready_status(http_port) == status

        try:
            if client == "mtls":
                await until(lambda: ready_is(200), "xapp run ready over mTLS", timeout=90)
                _, d = await asyncio.wait_for(listener.recv(), 30)
                assert d.node_id == "e2node-0"
            else:
                await until(lambda: ready_is(503), "xapp run answering not-ready", timeout=90)  # the xApp is up ...
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:  # ... and never gets a subscription
                    assert await ready_status(http_port) == 503
                    await asyncio.sleep(0.2)
        finally:
            listener.close()
            run.send_signal(signal.SIGINT)
            _, err = await asyncio.wait_for(run.communicate(), 30)
            sim.send_signal(signal.SIGINT)
            await asyncio.wait_for(sim.wait(), 30)
        if client == "plaintext":
            assert b"insecure link: e2 gRPC" in err
        else:
            assert b"insecure link: e2 gRPC" not in err

    asyncio.run(asyncio.wait_for(scenario(), 150))


async def tls_terminator(ca, server_pem, upstream_port: int) -> asyncio.Server:
    """A TLS front for a plain Redis (the bundled redis-server is built without TLS), as a RIC's
    DBaaS TLS sidecar would be: the client's handshake and verification are real."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(server_pem.cert, server_pem.key)

    async def pipe(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def handle(reader, writer):
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    return await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)


def decision(seq: int) -> Decision:
    now = time.time_ns()
    return Decision("e2node-0", "beam", "beam03", 3, 0.9, 2, 0.1, seq, "cell", now - 1000, now - 500, now)


@pytest.mark.timeout(60)
def test_redis_over_tls_with_auth(pki, tmp_path):
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        plain = redis.Redis(port=server.port)
        plain.config_set("requirepass", "s3cret")
        plain.close()

        async def scenario():
            front = await tls_terminator(pki["ca"], pki["server"], server.port)
            url = f"rediss://127.0.0.1:{front.sockets[0].getsockname()[1]}/0"
            try:
                results = {}
                for name, password, ca in (("good", "s3cret", pki["ca"]), ("bad_password", "nope", pki["ca"]),
                                           ("wrong_ca", "s3cret", pki["other_ca"])):
                    metrics = Metrics()
                    pub = RedisPublisher(url, 100, metrics, password, tls=TlsFiles(ca))
                    writer = asyncio.create_task(pub.run())
                    pub.publish([decision(7)])
                    await pub.flush(2.0)
                    writer.cancel()
                    await asyncio.gather(writer, return_exceptions=True)
                    await pub.aclose()
                    results[name] = metrics.registry.get_sample_value("xapp_published_total", {"sink": "redis"}) or 0
                return results
            finally:
                front.close()

        results = asyncio.run(scenario())
        assert results == {"good": 1, "bad_password": 0, "wrong_ca": 0}
        check = redis.Redis(port=server.port, password="s3cret")
        assert check.hget(hash_key("e2node-0", "beam"), "label") == b"beam03"
        check.close()
    finally:
        server.stop()


def test_zmq_curve_admits_only_authorized_subscribers(tmp_path):
    keys, allowed = tmp_path / "keys", tmp_path / "allowed"
    keys.mkdir()
    allowed.mkdir()
    _, server_secret = zmq.auth.create_certificates(keys, "server")
    client_public, client_secret = zmq.auth.create_certificates(keys, "client")
    _, stranger_secret = zmq.auth.create_certificates(keys, "stranger")
    (allowed / "client.key").write_bytes(open(client_public, "rb").read())
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    pub = ZmqPublisher(endpoint, Metrics(), context=zmq.Context(), curve=ZmqCurve(server_secret, allowed))

    async def scenario():
        server_public = keys / "server.key"
        listeners = {
            "authorized": DecisionListener(endpoint, curve=CurveClient.from_files(server_public, client_secret)),
            "stranger": DecisionListener(endpoint, curve=CurveClient.from_files(server_public, stranger_secret)),
            "plaintext": DecisionListener(endpoint),
        }
        got = {name: 0 for name in listeners}

        async def collect(name, listener):
            while True:
                await listener.recv()
                got[name] += 1

        tasks = [asyncio.create_task(collect(n, l)) for n, l in listeners.items()]
        for seq in range(40):  # PUB drops until subscriptions arrive: keep publishing for a while
            pub.publish([decision(seq)])
            await asyncio.sleep(0.05)
        for t in tasks:
            t.cancel()
        for listener in listeners.values():
            listener.close()
        return got

    try:
        got = asyncio.run(scenario())
    finally:
        pub.close()
    assert got["authorized"] > 0 and got["stranger"] == 0 and got["plaintext"] == 0
