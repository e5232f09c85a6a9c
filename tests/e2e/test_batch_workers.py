"""Scale-out batches: a submit-only server, `llmserve worker` processes, a real broker and PostgreSQL.

The kill test is the at-least-once / exactly-once-output promise: a worker killed with SIGKILL in
the middle of a batch loses nothing (its running lines are run again once their lease runs out, the
messages it had taken are claimed by the live workers) and duplicates nothing (each custom_id has
exactly one answer in the output file).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.fixtures_db import _execute_autocommit_blocking, _find_server, _unavailable
from tests.fixtures_redis import redis_url_under_test
from tests.live_server import LiveServer, _child_env, running_server
from tests.polling import poll
from tests.upstreams.openai_app import openai_server
from tests.upstreams.server import Fault, UpstreamServer

pytestmark = pytest.mark.e2e

RABBITMQ_URL = os.environ.get("LLMSERVE_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
LINES = 900
UPSTREAM_DELAY_S = 0.1
LEASE_S = 3.0
WORKERS = 3
CONCURRENCY = 8
DONE_TIMEOUT_S = 120.0


def _reachable(url: str, default_port: int) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2):
            return ""
    except OSError as exc:
        return f"{url} unreachable: {exc}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    server = _find_server()
    if server.admin_url is None:
        _unavailable(server.problem)
    assert server.admin_url is not None
    name = f"llmserve_jobs_{uuid.uuid4().hex[:10]}"
    _execute_autocommit_blocking(server.admin_url, f'CREATE DATABASE "{name}"')
    try:
        yield server.admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        _execute_autocommit_blocking(server.admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def upstream() -> Iterator[UpstreamServer]:
    server = openai_server("batch")
    server.fail_always(Fault("delay", delay_s=UPSTREAM_DELAY_S))
    with server:
        yield server


def _broker_url(broker: str) -> str:
    url = redis_url_under_test() if broker == "redis" else RABBITMQ_URL
    if problem := _reachable(url, 6379 if broker == "redis" else 5672):
        _unavailable(problem)
    return url


def _config(directory: Path, upstream: UpstreamServer, database_url: str, broker: str) -> Path:
    config = {
        "database_url": database_url,
        "models": [
            {
                "name": "remote",
                "provider": "openai",
                "api_base": f"{upstream.url}/v1",
                "model": "gpt-test",
                "timeout": 10,
            }
        ],
        "jobs": {
            "broker": broker,
            "broker_url": _broker_url(broker),
            "queue_name": f"llmserve-test-{uuid.uuid4().hex[:8]}",
            "lease_seconds": LEASE_S,
            "worker_concurrency": CONCURRENCY,
        },
    }
    path = directory / "llmserve.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _start_worker(config: Path, log_dir: Path, index: int) -> subprocess.Popen[bytes]:
    log = (log_dir / f"worker-{index}.log").open("wb")
    command = [sys.executable, "-m", "llmserve", "worker", "--config", str(config)]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=_child_env({}))


def _upload_batch(client: httpx.Client, lines: int) -> str:
    content = "".join(
        json.dumps(
            {
                "custom_id": f"line-{i}",
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": "remote", "messages": [{"role": "user", "content": f"q{i}"}]},
            }
        )
        + "\n"
        for i in range(lines)
    )
    upload = client.post(
        "/v1/files", files={"file": ("in.jsonl", content.encode())}, data={"purpose": "batch"}
    )
    assert upload.status_code == 200, upload.text
    batch = client.post(
        "/v1/batches",
        json={"input_file_id": upload.json()["id"], "endpoint": "/v1/chat/completions"},
    )
    assert batch.status_code == 200, batch.text
    return str(batch.json()["id"])


def _wait(client: httpx.Client, batch_id: str, until: Any, timeout: float) -> dict[str, Any]:
    batch: dict[str, Any] = {}

    def there() -> bool:
        nonlocal batch
        batch = client.get(f"/v1/batches/{batch_id}").json()
        return bool(until(batch))

    if not poll(there, within=timeout, interval=0.1):
        pytest.fail(f"batch did not get there in {timeout:.0f}s: {batch}")
    return batch


def _logs(log_dir: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in log_dir.glob("*.log"))


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_worker_killed_mid_batch_loses_and_duplicates_nothing(
    broker: str, tmp_path: Path, postgres_url: str, upstream: UpstreamServer
) -> None:
    config = _config(tmp_path, upstream, postgres_url, broker)
    workers: list[subprocess.Popen[bytes]] = []
    server: LiveServer
    with running_server(tmp_path / "data", extra_env={"LLMSERVE_CONFIG": str(config)}) as server:
        try:
            workers = [_start_worker(config, tmp_path, i) for i in range(WORKERS)]
            with httpx.Client(base_url=server.url, timeout=30) as client:
                batch_id = _upload_batch(client, LINES)
                _wait(client, batch_id, lambda b: b["request_counts"]["completed"] >= LINES // 6, 60)
                victim = workers[0]
                victim.send_signal(signal.SIGKILL)
                victim.wait(10)
                done_at_kill = client.get(f"/v1/batches/{batch_id}").json()["request_counts"]["completed"]
                assert done_at_kill < LINES, "the batch finished before the kill; make it longer"
                batch = _wait(
                    client, batch_id, lambda b: b["status"] in ("completed", "failed"), DONE_TIMEOUT_S
                )
                assert batch["status"] == "completed", batch
                assert batch["request_counts"] == {"total": LINES, "completed": LINES, "failed": 0}
                assert batch["error_file_id"] is None
                output = client.get(f"/v1/files/{batch['output_file_id']}/content").text.splitlines()
        except BaseException:
            print(_logs(tmp_path))
            raise
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.send_signal(signal.SIGINT)
            for worker in workers:
                try:
                    worker.wait(20)
                except subprocess.TimeoutExpired:
                    worker.kill()
    answers = [json.loads(line) for line in output]
    counts = Counter(answer["custom_id"] for answer in answers)
    assert set(counts) == {f"line-{i}" for i in range(LINES)}, "a custom_id is missing"
    assert max(counts.values()) == 1, f"duplicated: {[c for c, n in counts.items() if n > 1][:5]}"
    assert all(answer["response"]["status_code"] == 200 for answer in answers)
    # The upstream saw at least every line once; the lines the victim held were asked again.
    assert upstream.completed >= LINES
    rerun = _rerun_lines(postgres_url, batch_id)
    print(f"{broker}: killed a worker at {done_at_kill}/{LINES} done; {rerun} lines ran again elsewhere")
    assert rerun >= 1, "the killed worker held no running line; the kill proved nothing"


def _rerun_lines(database_url: str, batch_id: str) -> int:
    import asyncio

    from sqlalchemy import func, select

    from llmserve.storage.db import Database
    from llmserve.storage.models import JobRow

    async def count() -> int:
        database = Database(database_url)
        try:
            async with database.session(readonly=True) as session, session.begin():
                value = await session.scalar(
                    select(func.count()).where(JobRow.batch_id == batch_id, JobRow.attempts > 1)
                )
                return int(value or 0)
        finally:
            await database.dispose()

    return asyncio.run(count())
