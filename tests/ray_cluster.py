"""A real Ray cluster of two nodes on 127.0.0.1 for the engine tests: a head and a worker node started with
`ray start --block` as this test's own child processes, ended by their pids (never `ray stop`)."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

RAY = str(Path(sys.executable).with_name("ray"))


@contextlib.contextmanager
def ray_environment() -> Iterator[dict[str, str]]:
    """Ray's settings for a test: token auth with a token of the test's own (nothing written to ~/.ray),
    session files under a short temp folder (Unix socket paths are limited to 107 bytes), removed afterwards."""
    folder = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    try:
        yield {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_TMPDIR": folder,
               "RAY_USAGE_STATS_ENABLED": "0"}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _alive_nodes(address: str, env: dict[str, str]) -> int:
    code = "import ray; ray.init(address=%r, logging_level='ERROR'); print(sum(n['Alive'] for n in ray.nodes()))"
    done = subprocess.run([sys.executable, "-c", code % address], env=env, capture_output=True, text=True, timeout=120)
    return int(done.stdout.split()[-1]) if done.returncode == 0 and done.stdout.split() else 0


@contextlib.contextmanager
def two_node_cluster(environment: dict[str, str]) -> Iterator[str]:
    """Start a head and a second node (one CPU each); yield the head's address; end both by pid."""
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"} | environment
    port = _free_port()
    address = f"127.0.0.1:{port}"
    common = ["--block", "--num-cpus=1", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    processes = []
    try:
        processes.append(subprocess.Popen(
            [RAY, "start", "--head", f"--port={port}", "--include-dashboard=false",
             f"--temp-dir={environment['RAY_TMPDIR']}", *common],
            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 120
        while not _alive_nodes(address, env):
            assert time.monotonic() < deadline, "the Ray head did not come up in 120 s"
            time.sleep(1)
        processes.append(subprocess.Popen([RAY, "start", f"--address={address}", *common], env=env,
                                          start_new_session=True, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        while _alive_nodes(address, env) < 2:
            assert time.monotonic() < deadline, "the second Ray node did not join in 120 s"
            time.sleep(1)
        yield address
    finally:
        for process in reversed(processes):  # each `ray start --block` leads its own process group
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in reversed(processes):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
