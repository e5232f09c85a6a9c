"""A real ``llmserve serve`` process on a free port, shared by the e2e and browser tiers.

The server is started the way a user starts it (``python -m llmserve serve --port … --data-dir …``),
with the bundled model unless ``LLMSERVE_TEST_MODEL`` names another one (passed as ``--model``).
Its own ``LLMSERVE_*`` environment is cleared so a developer's shell settings do not leak in. The
session server allows CORS from one reserved local origin, where the browser tier serves examples/.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

MODEL_ENV = "LLMSERVE_TEST_MODEL"
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    model: str = field(default="")

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> int:
        """Graceful stop (SIGINT, as Ctrl-C); kills after STOP_TIMEOUT_S. Returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def _child_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("LLMSERVE_")}
    return {**env, **extra}


def start_server(data_dir: Path, *, extra_env: Mapping[str, str] | None = None) -> LiveServer:
    """Start a server on a free port and return once ``/ready`` answers 200 (fails the test otherwise)."""
    port = free_port()
    command = [sys.executable, "-m", "llmserve", "serve", "--port", str(port), "--data-dir", str(data_dir)]
    if model := os.environ.get(MODEL_ENV):
        command += ["--model", model]
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"{data_dir.name}-server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=_child_env(extra_env or {})
        )
    server = LiveServer(f"http://{HOST}:{port}", data_dir, log_path, process)
    try:
        _wait_ready(server)
        master = (extra_env or {}).get("LLMSERVE_MASTER_KEY")
        auth = {"authorization": f"Bearer {master}"} if master else {}
        with httpx.Client(base_url=server.url, timeout=10, headers=auth) as client:
            server.model = client.get("/v1/models").json()["data"][0]["id"]
    except BaseException:
        server.stop()
        raise
    return server


def _wait_ready(server: LiveServer) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = "no answer"
    with httpx.Client(base_url=server.url, timeout=5) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                pytest.fail(
                    f"llmserve exited with {server.process.returncode} before it was ready:\n"
                    + server.log_tail()
                )
            with contextlib.suppress(httpx.TransportError):
                response = client.get("/ready")
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text[:200]}"
            time.sleep(0.25)
    pytest.fail(f"llmserve not ready after {READY_TIMEOUT_S:.0f}s (last: {last}):\n{server.log_tail()}")


@contextlib.contextmanager
def running_server(data_dir: Path, *, extra_env: Mapping[str, str] | None = None) -> Iterator[LiveServer]:
    """A server for the length of a ``with`` block: started ready, stopped (gracefully) after."""
    server = start_server(data_dir, extra_env=extra_env)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def examples_origin() -> str:
    """The origin the browser tier serves examples/ from; the session server allows it (CORS)."""
    return f"http://{HOST}:{free_port()}"


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory, examples_origin: str) -> Iterator[LiveServer]:
    data_dir = tmp_path_factory.mktemp("live-data")
    cors = {"LLMSERVE_SERVER__CORS_ORIGINS": json.dumps([examples_origin])}
    with running_server(data_dir, extra_env=cors) as server:
        yield server


@pytest.fixture
def server_factory() -> Iterator[list[LiveServer]]:
    """For tests that stop and start their own servers: whatever is still running is stopped after."""
    started: list[LiveServer] = []
    try:
        yield started
    finally:
        for server in started:
            server.stop()


def sse_data(lines: Iterable[str]) -> Iterator[str]:
    """The ``data:`` payloads of an SSE body, read line by line as they arrive."""
    for line in lines:
        if line.startswith("data: "):
            yield line[len("data: ") :]
