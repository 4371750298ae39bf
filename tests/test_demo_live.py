"""A demo an operator can poke: `xapp demo` prints its endpoints, `xapp listen` and HTTP work on
them from outside, one `exit:` line edited in the named descriptor moves the exit live, and a wrong
exit is refused by validate and by the running demo with the same message."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from polling import until_sync

pytestmark = pytest.mark.e2e  # the slow end-to-end tier: real processes, sockets, the whole xApp

REPO = Path(__file__).resolve().parents[1]
XAPP = [sys.executable, "-m", "xapp"]


class Lines:
    """A child's stdout, line by line, readable with a timeout."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.seen: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self._queue.put(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 90.0) -> re.Match:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                line = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            self.seen.append(line)
            if m := re.search(pattern, line):
                return m
        raise AssertionError(f"no line matching {pattern!r} in {timeout} s; saw:\n" + "\n".join(self.seen))


def decisions_at(url: str, task: str, exit_: int) -> float:
    text = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("xapp_decisions_total{") and f'task="{task}"' in line and f'exit="{exit_}"' in line)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "descriptors").mkdir()
    (tmp_path / "descriptors" / "default.yaml").write_text((REPO / "descriptors" / "default.yaml").read_text())
    (tmp_path / "heads").symlink_to(REPO / "heads")
    return tmp_path


def test_demo_prints_endpoints_takes_live_edits_and_refuses_a_wrong_exit(tree: Path) -> None:
    descriptor = tree / "descriptors" / "default.yaml"
    start_exit = yaml.safe_load(descriptor.read_text())["tasks"]["beam"]["exit"]
    new_exit = 4 if start_exit != 4 else 3
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    demo = subprocess.Popen([*XAPP, "demo", "--seconds", "0", "--rate", "5", "--threads", "1", "--descriptor", str(descriptor)],
                            cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        out = Lines(demo)
        zmq_endpoint = out.wait_for(r"^\s+ZMQ\s+(\S+)").group(1)
        http = out.wait_for(r"^\s+HTTP\s+(http://\S+)/metrics").group(1)
        out.wait_for(rf"xApp ready \(.*beam@{start_exit}.*\); serving until Ctrl-C")

        assert urllib.request.urlopen(f"{http}/ric/v1/health/ready", timeout=5).status == 200
        listen = subprocess.run([*XAPP, "listen", "--endpoint", zmq_endpoint, "--task", "beam", "--count", "2"],
                                capture_output=True, text=True, timeout=60)
        assert listen.returncode == 0 and len(re.findall(rf"^beam/\S+ .* exit={start_exit} ", listen.stdout, re.M)) == 2

        # One line: the exit. The manifest supplies the head; the running xApp moves the task there.
        subprocess.run([*XAPP, "exits", "set", "beam", str(new_exit), "--descriptor", str(descriptor)], check=True, timeout=60)
        out.wait_for(rf"descriptor edit applied: serving .*beam@{new_exit}")
        until_sync(lambda: decisions_at(http, "beam", new_exit) > 0, "a beam decision at the new exit")

        # A custom head trained at another exit: refused by validate and by the running demo alike.
        doc = yaml.safe_load(descriptor.read_text())
        doc["tasks"]["beam"].update(exit=5, head="heads/beam/exit2.safetensors")
        descriptor.write_text(yaml.safe_dump(doc, sort_keys=False))
        refused = out.wait_for(r"descriptor edit refused, the running one stays")
        problem = out.wait_for(r"^\s+- (tasks\.beam\.head: .*)").group(1)
        assert "was trained at exit 2, configured at exit 5" in problem, refused
        validate = subprocess.run([*XAPP, "descriptor", "validate", str(descriptor)], capture_output=True, text=True, timeout=60)
        assert validate.returncode == 2 and f"- {problem}" in validate.stderr
        time.sleep(1.0)
        assert decisions_at(http, "beam", 5) == 0

        demo.send_signal(signal.SIGINT)
        out.wait_for(r"^xapp demo: [0-9.]+ s, 4 simulated E2 nodes")
        assert demo.wait(timeout=60) == 0
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
