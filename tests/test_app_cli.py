"""The `xapp run` and `xapp listen` commands as an operator runs them: separate processes, real
sockets, a clean exit on SIGINT, and a one-line error for a bad descriptor."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest
from conftest import TINY, single_frame_nodes, write_descriptor
from polling import until

from xapp.ops.redis_server import free_port

pytestmark = pytest.mark.e2e  # the slow end-to-end tier: real processes, sockets, the whole xApp

XAPP = [sys.executable, "-m", "xapp"]


async def http_status(port: int, path: str) -> int:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return 0
    writer.write(f"GET {path} HTTP/1.1\r\nHost: xapp\r\n\r\n".encode())
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    writer.close()
    return status


def test_run_serves_listen_prints_and_sigint_stops_cleanly(tiny_model, redis_url, tmp_path):
    async def scenario():
        model_dir, pools = tiny_model
        nodes = single_frame_nodes(pools, count=2, rate_hz=20.0)
        for n in nodes:
            await n.start()
        zmq_endpoint, http_port = f"tcp://127.0.0.1:{free_port()}", free_port()
        path = write_descriptor(model_dir, tmp_path / "descriptors" / "xapp.yaml", [n.endpoint for n in nodes],
                                zmq_endpoint, redis_url, http_port)
        env = {**os.environ, "XAPP_SHARD_COUNT": "1"}
        run = await asyncio.create_subprocess_exec(*XAPP, "run", "--descriptor", str(path), "--threads", "1",
                                                   stderr=subprocess.PIPE, env=env)
        try:
            async def ready() -> bool:
                assert run.returncode is None, (await run.stderr.read()).decode()[-2000:]
                return await http_status(http_port, "/ric/v1/health/ready") == 200

            await until(ready, "xapp run ready", timeout=60)
            assert await http_status(http_port, "/ric/v1/health/alive") == 200
            listen = await asyncio.create_subprocess_exec(
                *XAPP, "listen", "--endpoint", zmq_endpoint, "--task", "beam", "--count", "5", stdout=subprocess.PIPE)
            out, _ = await asyncio.wait_for(listen.communicate(), 60)
            assert listen.returncode == 0
            lines = [line for line in out.decode().splitlines() if line.startswith("beam/")]
            assert len(lines) == 5
            beam_node = nodes[1]  # single_frame_nodes alternates modulation, beam
            assert all(line.split()[0] == f"beam/{beam_node.node_id}" for line in lines)
            assert all(beam_node.pools["beam"].labels[0] in line for line in lines)
        finally:
            run.send_signal(signal.SIGINT)
            _, err = await asyncio.wait_for(run.communicate(), 30)
            for n in nodes:
                await n.stop()
        assert run.returncode == 0, err.decode()[-2000:]
        assert b'"xapp stopped"' in err  # JSON log line of the orderly shutdown

    asyncio.run(asyncio.wait_for(scenario(), 180))


def test_run_refuses_an_invalid_descriptor_with_a_clear_error(tmp_path, capsys):
    from xapp.cli import main

    bad = tmp_path / "descriptors" / "bad.yaml"
    bad.parent.mkdir()
    bad.write_text("xapp: {name: x, version: 1.0.0}\n")
    assert main(["run", "--descriptor", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "invalid descriptor" in err and "encoder: required" in err


def test_run_refuses_a_corrupt_head_naming_the_file(tiny_model, tmp_path, capsys):
    import shutil

    from xapp.cli import main
    from xapp.vocab import NodeEndpoint

    model_dir, _ = tiny_model
    copy = tmp_path / "model"
    shutil.copytree(model_dir, copy)
    head = copy / "beam-exit2.safetensors"
    head.write_bytes(head.read_bytes()[:200])
    path = write_descriptor(copy, tmp_path / "descriptors" / "xapp.yaml", [NodeEndpoint("e2node-0", "127.0.0.1:1")],
                            f"tcp://127.0.0.1:{free_port()}", "redis://127.0.0.1:1/0", free_port())
    assert main(["run", "--descriptor", str(path), "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert "tasks.beam.head: " in err and "beam-exit2.safetensors: not a readable safetensors file" in err


def test_demo_runs_the_whole_loop_and_prints_a_summary(tiny_model, tmp_path, capsys):
    import json

    from xapp.cli import main
    from xapp.vocab import NodeEndpoint

    model_dir, _ = tiny_model
    path = write_descriptor(model_dir, tmp_path / "descriptors" / "xapp.yaml", [NodeEndpoint("e2node-0", "127.0.0.1:1")],
                            "tcp://127.0.0.1:1", "redis://127.0.0.1:1/0", 1)  # demo replaces nodes, ports, redis
    out_json = tmp_path / "demo.json"
    assert main(["demo", "--descriptor", str(path), "--seconds", "3", "--rate", "20", "--threads", "1",
                 "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "indication->decision latency" in out and "FLOPs per frame" in out
    summary = json.loads(out_json.read_text())
    assert set(summary["tasks"]) == {"modulation", "beam"}
    assert all(t["decisions"] > 0 for t in summary["tasks"].values())
    assert summary["tasks"]["modulation"]["exits"] == [1] and summary["tasks"]["beam"]["exits"] == [2]
    assert summary["redis"]["hashes"] == 8  # 4 nodes x 2 tasks, latest decision each
    assert summary["rejected"] == 0


def test_bench_measures_both_deployments_on_the_same_frames(tiny_model, tmp_path, capsys):
    import json

    from xapp.cli import main
    from xapp.vocab import NodeEndpoint
    from xapp.model import EncoderConfig, exit_flops

    model_dir, _ = tiny_model
    path = write_descriptor(model_dir, tmp_path / "descriptors" / "xapp.yaml", [NodeEndpoint("e2node-0", "127.0.0.1:1")],
                            "tcp://127.0.0.1:1", "redis://127.0.0.1:1/0", 1)
    out_json = tmp_path / "bench.json"
    assert main(["bench", "--descriptor", str(path), "--frames", "16", "--seconds", "1", "--loads", "50",
                 "--threads", "1", "--json", str(out_json)]) == 0
    assert "speed-up measured" in capsys.readouterr().out
    result = json.loads(out_json.read_text())
    off = result["offline"]
    assert off["frames"] == 32 and off["naive_frames_per_s"] > 0 and off["early_exit_frames_per_s"] > 0
    flops = exit_flops(EncoderConfig(**TINY))
    # modulation leaves at exit 1, beam at exit 2; naive runs all 4 blocks for both
    assert off["gflops_per_frame_early_exit"] < off["gflops_per_frame_naive"]
    assert off["flop_ratio"] == pytest.approx(off["gflops_per_frame_naive"] / off["gflops_per_frame_early_exit"])
    assert off["gflops_per_frame_naive"] == pytest.approx(flops[-1] / 1e9, rel=0.01)
    assert off["gflops_per_frame_early_exit"] == pytest.approx((flops[0] + flops[1]) / 2e9, rel=0.01)
    assert [r["load_percent"] for r in result["online"]] == [50]
    assert result["online"][0]["decisions_per_s"] > 0


def test_load_generator_failure_is_a_clear_error():
    from xapp.harness.loadgen import LoadGenError, LoadGenerator

    with pytest.raises(LoadGenError, match="no-such-task"):
        with LoadGenerator(1, ["no-such-task"], "tcp://127.0.0.1:1"):
            pass


def test_cli_parser_imports_no_grpc_stubs() -> None:
    # Training commands must run where grpcio is missing or older than the generated stubs need (a GPU
    # image): building the parser imports no gRPC, and the handlers import it only when they serve.
    code = ("import sys, xapp.cli; xapp.cli.build_parser(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'grpc' or m.startswith('xapp.e2.gen')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
