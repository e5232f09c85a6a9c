"""Batch throughput: lines per second through the Batch API against a fast upstream.

Scenarios (each a fresh deployment, the same input file):
- ``embedded``: one ``llmserve serve`` on the defaults (SQLite, database broker, in-server worker);
- ``redis-N``: a submit-only server plus N ``llmserve worker`` processes on PostgreSQL + Redis Streams
  (and ``rabbitmq-N`` with ``--brokers rabbitmq``).
The upstream is the raw asyncio keep-alive server of ``upstream_http_client.py`` (a fixed chat
completion, in its own process), so the figure is llmserve's own cost per line: queue, database,
the in-process request pipeline and the upstream call. The clock runs from POST /v1/batches to the
batch's ``completed`` status (output file written).

    python benchmarks/batch_throughput.py --lines 2000 --workers 1 3
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from benchmarks.upstream_http_client import _serve

POSTGRES_ADMIN = os.environ.get("LLMSERVE_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("LLMSERVE_BENCH_REDIS", "redis://127.0.0.1:6379/0")
RABBITMQ_URL = os.environ.get("LLMSERVE_BENCH_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672/")


@dataclass
class Result:
    scenario: str
    lines: int
    seconds: float
    completed: int
    failed: int

    @property
    def lines_per_s(self) -> float:
        return self.lines / self.seconds if self.seconds else 0.0


@contextmanager
def slow_upstream(delay_s: float) -> Iterator[str]:
    """An OpenAI-compatible upstream that takes ``delay_s`` per answer, like a real model API: the
    case where more workers (or more concurrency per worker) buy throughput even on few cores."""
    from tests.upstreams.openai_app import openai_server
    from tests.upstreams.server import Fault

    server = openai_server("bench")
    server.fail_always(Fault("delay", delay_s=delay_s))
    with server:
        yield f"{server.url}/v1"


@contextmanager
def fast_upstream() -> Iterator[str]:
    receive, send = multiprocessing.Pipe(duplex=False)
    accepted = multiprocessing.Value("i", 0)
    process = multiprocessing.Process(target=_serve, args=(send, accepted), daemon=True)
    process.start()
    port = receive.recv()
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        process.terminate()
        process.join(5)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LLMSERVE_")}


@contextmanager
def postgres_database() -> Iterator[str]:
    import asyncio

    from tests.fixtures_db import _execute_autocommit

    admin = POSTGRES_ADMIN.replace("postgresql://", "postgresql+asyncpg://")
    name = f"llmserve_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(_execute_autocommit(admin, f'CREATE DATABASE "{name}"'))
    try:
        yield POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(_execute_autocommit(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def deployment(config: dict[str, Any], workers: int, directory: Path) -> Iterator[str]:
    path = directory / "llmserve.yaml"
    path.write_text(yaml.safe_dump(config))
    port = _free_port()
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "llmserve", "serve", "--config", str(path), "--port", str(port)],
            stdout=(directory / "server.log").open("wb"),
            stderr=subprocess.STDOUT,
            env=_env(),
        )
    ]
    processes += [
        subprocess.Popen(
            [sys.executable, "-m", "llmserve", "worker", "--config", str(path)],
            stdout=(directory / f"worker-{i}.log").open("wb"),
            stderr=subprocess.STDOUT,
            env=_env(),
        )
        for i in range(workers)
    ]
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, workers, directory)
        yield url
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_ready(url: str, workers: int, directory: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    # Workers are ready once they print their banner.
    while time.monotonic() < deadline:
        banners = sum(
            "llmserve worker:" in p.read_text(errors="replace") for p in directory.glob("worker-*.log")
        )
        if banners >= workers:
            return
        time.sleep(0.2)
    raise SystemExit(f"deployment in {directory} did not get ready")


def input_file(lines: int) -> bytes:
    return "".join(
        json.dumps(
            {
                "custom_id": f"line-{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": "remote", "messages": [{"role": "user", "content": f"question {i}"}]},
            }
        )
        + "\n"
        for i in range(lines)
    ).encode()


def run_batch(url: str, lines: int) -> tuple[float, dict[str, Any]]:
    with httpx.Client(base_url=url, timeout=60) as client:
        upload = client.post(
            "/v1/files", files={"file": ("in.jsonl", input_file(lines))}, data={"purpose": "batch"}
        )
        upload.raise_for_status()
        started = time.perf_counter()
        batch = client.post(
            "/v1/batches", json={"input_file_id": upload.json()["id"], "endpoint": "/v1/chat/completions"}
        ).json()
        while batch["status"] not in ("completed", "failed", "cancelled", "expired"):
            time.sleep(0.05)
            batch = client.get(f"/v1/batches/{batch['id']}").json()
        return time.perf_counter() - started, batch


def scenario_config(upstream: str, broker: str, database_url: str | None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "models": [{"name": "remote", "provider": "openai", "api_base": upstream, "model": "gpt-bench"}],
        "observability": {"log_payloads": False},
        "server": {"log_level": "warning"},
    }
    if database_url:
        config["database_url"] = database_url
    if broker != "database":
        config["jobs"] = {
            "broker": broker,
            "broker_url": REDIS_URL if broker == "redis" else RABBITMQ_URL,
            "queue_name": f"bench-{uuid.uuid4().hex[:8]}",
        }
    return config


def measure(name: str, upstream: str, broker: str, workers: int, lines: int) -> Result:
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as tmp:
        directory = Path(tmp)
        if broker == "database":
            config = scenario_config(upstream, broker, None)
            config["data_dir"] = str(directory / "data")
            with deployment(config, 0, directory) as url:
                seconds, batch = run_batch(url, lines)
        else:
            with postgres_database() as database_url:
                config = scenario_config(upstream, broker, database_url)
                with deployment(config, workers, directory) as url:
                    seconds, batch = run_batch(url, lines)
    counts = batch["request_counts"]
    return Result(name, lines, seconds, counts["completed"], counts["failed"])


def main(argv: list[str] | None = None) -> list[Result]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--brokers", nargs="+", default=["redis"], choices=["redis", "rabbitmq"])
    parser.add_argument("--no-embedded", action="store_true", help="skip the embedded (SQLite) scenario")
    parser.add_argument(
        "--upstream-delay-ms", type=float, default=0, help="answer after this long (0: the fast upstream)"
    )
    args = parser.parse_args(argv)
    results = []
    print(
        f"# {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()};",
        f"{args.lines} lines",
    )
    delay = args.upstream_delay_ms / 1000
    print(
        f"# upstream: {'fast (fixed body)' if not delay else f'{args.upstream_delay_ms:.0f} ms per answer'}"
    )
    with slow_upstream(delay) if delay else fast_upstream() as upstream:
        plan = [] if args.no_embedded else [("embedded (SQLite, in-server worker)", "database", 0)]
        plan += [(f"{b} + PostgreSQL, {n} worker(s)", b, n) for b in args.brokers for n in args.workers]
        for name, broker, workers in plan:
            result = measure(name, upstream, broker, workers, args.lines)
            results.append(result)
            print(
                f"{result.scenario:<42} {result.lines_per_s:8.1f} lines/s  "
                f"({result.seconds:.1f} s; completed {result.completed}, failed {result.failed})",
                flush=True,
            )
    return results


if __name__ == "__main__":
    main()
