"""The Batch API and async jobs on a live ``llmserve serve``, driven by the official openai SDK.

The server is the embedded default (SQLite queue, worker inside the server) with a config file a
user could write: the bundled model as a local group next to remote groups at loopback
OpenAI-compatible upstreams (``tests.upstreams``) that answer predictably, and slowly on demand.
What is proven: the SDK's files/batches calls work unchanged; a big mixed batch answers every
custom_id exactly once; a cancelled batch stops and accounts for every line; a server stopped
mid-batch (Ctrl-C or kill -9) resumes it after a restart; an async job's callback arrives signed.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from openai import OpenAI
from openai.types.chat import ChatCompletion

from llmserve.jobs.webhooks import verify
from tests.live_server import LiveServer, running_server, start_server
from tests.polling import poll
from tests.upstreams.openai_app import deployment_for, openai_server
from tests.upstreams.server import Fault, Reply, UpstreamRequest, UpstreamServer

pytestmark = pytest.mark.e2e

API_KEY = "sk-e2e-batch-tenant"  # auth is off: the bearer token is the tenant, SDK and httpx alike
AUTH = {"authorization": f"Bearer {API_KEY}"}
WEBHOOK_SECRET = "whsec-e2e-batch-0123456789abcdef"
SLOW_DELAY_S = 0.1
LOCAL = "tiny-chat"
TERMINAL = ("completed", "failed", "cancelled", "expired")


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, UpstreamServer]]:
    servers = {"fast": openai_server("fast"), "slow": openai_server("slow")}
    servers["slow"].fail_always(Fault("delay", delay_s=SLOW_DELAY_S))
    for server in servers.values():
        server.start()
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def write_config(directory: Path, models: list[dict[str, Any]], jobs: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "llmserve.yaml"
    path.write_text(yaml.safe_dump({"models": models, "jobs": jobs}))
    return path


@pytest.fixture(scope="module")
def server(
    upstreams: dict[str, UpstreamServer], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    directory = tmp_path_factory.mktemp("batch-sdk")
    config = write_config(
        directory,
        models=[
            {"name": LOCAL, "model": LOCAL},
            deployment_for("remote", upstreams["fast"], timeout=30),
            deployment_for("slow", upstreams["slow"], timeout=30),
        ],
        jobs={
            "poll_interval_seconds": 0.1,
            "webhook_secret": WEBHOOK_SECRET,
            "webhook_allow_private": True,  # the receiver below is on loopback
        },
    )
    with running_server(directory / "data", extra_env={"LLMSERVE_CONFIG": str(config)}) as live:
        yield live


@pytest.fixture
def sdk(server: LiveServer) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{server.url}/v1", api_key=API_KEY, max_retries=0, timeout=60) as client:
        yield client


@pytest.fixture
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=AUTH, timeout=60) as client:
        yield client


# --- helpers ------------------------------------------------------------------------------------


def chat_line(custom_id: str, model: str, text: str, max_tokens: int = 8) -> dict[str, Any]:
    body = {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": max_tokens}
    if model == LOCAL:
        body["temperature"] = 0
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def submit(http: httpx.Client, lines: list[dict[str, Any]]) -> str:
    upload = http.post("/v1/files", files={"file": ("in.jsonl", jsonl(lines))}, data={"purpose": "batch"})
    assert upload.status_code == 200, upload.text
    created = http.post(
        "/v1/batches",
        json={
            "input_file_id": upload.json()["id"],
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        },
    )
    assert created.status_code == 200, created.text
    return str(created.json()["id"])


def wait_batch(
    http: httpx.Client,
    batch_id: str,
    until: Callable[[dict[str, Any]], bool],
    timeout: float,
    interval: float = 0.1,
) -> dict[str, Any]:
    batch: dict[str, Any] = {}

    def there() -> bool:
        nonlocal batch
        batch = http.get(f"/v1/batches/{batch_id}").json()
        return until(batch)

    if not poll(there, within=timeout, interval=interval):
        pytest.fail(f"batch {batch_id} did not get there in {timeout:.0f}s: {batch}")
    return batch


def finished(batch: dict[str, Any]) -> bool:
    return batch["status"] in TERMINAL


def file_lines(http: httpx.Client, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    response = http.get(f"/v1/files/{file_id}/content")
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines()]


def once_each(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    counts = Counter(line["custom_id"] for line in lines)
    repeated = [custom_id for custom_id, count in counts.items() if count > 1]
    assert not repeated, f"custom_ids answered more than once: {repeated[:5]}"
    return {line["custom_id"]: line for line in lines}


# --- the SDK end to end -------------------------------------------------------------------------


def test_the_openai_sdk_uploads_runs_and_downloads_a_batch(sdk: OpenAI) -> None:
    lines = [chat_line(f"remote-{i}", "remote", f"question {i}") for i in range(12)]
    lines += [chat_line(f"local-{i}", LOCAL, f"Say {i}", max_tokens=3) for i in range(4)]
    uploaded = sdk.files.create(file=("requests.jsonl", jsonl(lines)), purpose="batch")
    assert uploaded.purpose == "batch" and uploaded.bytes == len(jsonl(lines))
    assert uploaded.id in {f.id for f in sdk.files.list(purpose="batch")}

    batch = sdk.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"purpose": "sdk e2e"},
    )
    assert batch.status == "validating" and batch.input_file_id == uploaded.id

    def ended() -> bool:
        nonlocal batch
        batch = sdk.batches.retrieve(batch.id)
        return batch.status in TERMINAL

    poll(ended, within=60, interval=0.2)
    assert batch.status == "completed", batch
    assert batch.request_counts is not None
    assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (
        16,
        16,
        0,
    )
    assert batch.metadata == {"purpose": "sdk e2e"} and batch.error_file_id is None
    assert batch.output_file_id is not None

    output = [json.loads(line) for line in sdk.files.content(batch.output_file_id).text.splitlines()]
    answers = once_each(output)
    assert set(answers) == {line["custom_id"] for line in lines}
    for custom_id, line in answers.items():
        assert line["response"]["status_code"] == 200 and line["error"] is None
        completion = ChatCompletion.model_validate(line["response"]["body"])  # what the SDK would parse
        text = completion.choices[0].message.content
        if custom_id.startswith("remote-"):
            assert text == f"[fast] echo: question {custom_id.removeprefix('remote-')}"
        else:
            assert completion.model == LOCAL and text
    assert sdk.files.retrieve(batch.output_file_id).purpose == "batch_output"
    assert batch.id in [listed.id for listed in sdk.batches.list(limit=5)]


# --- scale --------------------------------------------------------------------------------------


def test_a_thousand_line_batch_across_a_local_and_a_remote_group(http: httpx.Client) -> None:
    count = 1000
    lines = [
        chat_line(f"line-{i}", LOCAL if i % 2 else "remote", f"q{i}", max_tokens=1 if i % 2 else 4)
        for i in range(count)
    ]
    started = time.monotonic()
    batch = wait_batch(http, submit(http, lines), finished, timeout=240, interval=0.5)
    elapsed = time.monotonic() - started
    print(f"{count} lines (half local, half remote) in {elapsed:.1f}s")
    assert batch["status"] == "completed", batch
    assert batch["request_counts"] == {"total": count, "completed": count, "failed": 0}
    assert batch["error_file_id"] is None

    answers = once_each(file_lines(http, batch["output_file_id"]))
    assert set(answers) == {f"line-{i}" for i in range(count)}, "a custom_id is missing"
    for i in range(count):
        response = answers[f"line-{i}"]["response"]
        assert response["status_code"] == 200
        if i % 2:
            assert response["body"]["model"] == LOCAL
        else:
            assert response["body"]["choices"][0]["message"]["content"] == f"[fast] echo: q{i}"


# --- cancel -------------------------------------------------------------------------------------


def test_cancelling_a_running_batch_stops_it_and_accounts_for_every_line(
    sdk: OpenAI, http: httpx.Client, upstreams: dict[str, UpstreamServer]
) -> None:
    slow = upstreams["slow"]
    count = 300
    batch_id = submit(http, [chat_line(f"c-{i}", "slow", f"c{i}") for i in range(count)])
    wait_batch(http, batch_id, lambda b: b["request_counts"]["completed"] >= 20, timeout=30)

    cancelling = sdk.batches.cancel(batch_id)
    assert cancelling.status == "cancelling", "lines still running finish first"
    assert cancelling.cancelling_at is not None
    batch = wait_batch(http, batch_id, finished, timeout=30)
    assert batch["status"] == "cancelled" and batch["cancelled_at"], batch
    asked = len(slow.requests)

    counts = batch["request_counts"]
    assert counts["total"] == count and 20 <= counts["completed"] < count, counts
    output = once_each(file_lines(http, batch["output_file_id"]))
    errors = once_each(file_lines(http, batch["error_file_id"]))
    assert len(output) == counts["completed"]
    assert all(line["response"]["status_code"] == 200 for line in output.values())
    assert {line["error"]["code"] for line in errors.values()} == {"batch_cancelled"}
    assert all(line["response"] is None for line in errors.values())
    assert not set(output) & set(errors)
    assert set(output) | set(errors) == {f"c-{i}" for i in range(count)}, "every line is accounted for"

    # Nothing runs after: the counts and the upstream stay still (for a second, failing as soon as they move).
    def moved() -> bool:
        return (
            http.get(f"/v1/batches/{batch_id}").json()["request_counts"] != counts
            or len(slow.requests) != asked
        )

    assert not poll(moved, within=1.0, interval=0.1)
    assert http.get(f"/v1/batches/{batch_id}").json()["request_counts"] == counts
    assert len(slow.requests) == asked
    assert asked < count, "cancelled lines never reached the upstream"
    again = http.post(f"/v1/batches/{batch_id}/cancel")
    assert again.status_code == 200 and again.json()["status"] == "cancelled"


# --- restart ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def restart_upstream() -> Iterator[UpstreamServer]:
    server = openai_server("restart")
    server.fail_always(Fault("delay", delay_s=SLOW_DELAY_S))
    with server:
        yield server


@pytest.mark.parametrize("stop", ["sigint", "sigkill"])
def test_a_server_stopped_mid_batch_resumes_it_after_a_restart(
    stop: str, tmp_path: Path, restart_upstream: UpstreamServer, server_factory: list[LiveServer]
) -> None:
    count = 200
    restart_upstream.reset_counters()
    # A short lease so that lines a killed server was running are taken again quickly.
    config = write_config(
        tmp_path,
        models=[deployment_for("remote", restart_upstream, timeout=30)],
        jobs={"poll_interval_seconds": 0.1, "lease_seconds": 2, "worker_concurrency": 4},
    )
    env = {"LLMSERVE_CONFIG": str(config)}
    data_dir = tmp_path / "data"
    first = start_server(data_dir, extra_env=env)
    server_factory.append(first)
    with httpx.Client(base_url=first.url, headers=AUTH, timeout=30) as http:
        batch_id = submit(http, [chat_line(f"r-{i}", "remote", f"r{i}") for i in range(count)])
        wait_batch(http, batch_id, lambda b: b["request_counts"]["completed"] >= 30, timeout=30)
    if stop == "sigint":
        assert first.stop() == 0, first.log_tail()
    else:
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(10)
    asked_by_first = len(restart_upstream.requests)

    second = start_server(data_dir, extra_env=env)
    server_factory.append(second)
    with httpx.Client(base_url=second.url, headers=AUTH, timeout=30) as http:
        resumed = http.get(f"/v1/batches/{batch_id}").json()
        done_at_stop = resumed["request_counts"]["completed"]
        assert 30 <= done_at_stop < count, (
            f"stopped with {done_at_stop} done: finished lines lost, or none left"
        )
        assert resumed["status"] == "in_progress"
        batch = wait_batch(http, batch_id, finished, timeout=60)
        assert batch["status"] == "completed", (batch, second.log_tail())
        assert batch["request_counts"] == {"total": count, "completed": count, "failed": 0}
        assert batch["error_file_id"] is None
        answers = once_each(file_lines(http, batch["output_file_id"]))
    assert set(answers) == {f"r-{i}" for i in range(count)}
    for i in range(count):
        response = answers[f"r-{i}"]["response"]
        assert response["status_code"] == 200
        assert response["body"]["choices"][0]["message"]["content"] == f"[restart] echo: r{i}"
    assert len(restart_upstream.requests) > asked_by_first, "the restarted server ran the rest"
    # The lines the first server was running when it stopped were asked again, yet answered once.
    asked = Counter(request.json()["messages"][0]["content"] for request in restart_upstream.requests)
    rerun = sum(1 for n in asked.values() if n > 1)
    print(f"{stop}: stopped at {done_at_stop}/{count} done; {rerun} lines asked again after the restart")
    assert rerun >= 1, "no line was running when the server stopped; the stop proved little"


# --- async jobs with a callback -----------------------------------------------------------------


class Recorder:
    """A webhook receiver: answers 200 to everything; the UpstreamServer keeps what arrived."""

    def __call__(self, request: UpstreamRequest) -> Reply:
        return Reply(200, {"received": True})


def test_an_async_job_calls_back_with_a_signed_result(http: httpx.Client) -> None:
    with UpstreamServer(Recorder()) as receiver:
        body = {
            "model": "remote",
            "messages": [{"role": "user", "content": "call me back"}],
            "max_tokens": 8,
            "callback_url": f"{receiver.url}/hooks/llm?source=e2e",
        }
        submitted = http.post("/v1/async/chat/completions", json=body)
        assert submitted.status_code == 202, submitted.text
        job_id = submitted.json()["id"]
        assert submitted.json()["callback"]["state"] == "pending"
        assert receiver.wait_for(lambda: len(receiver.requests) >= 1, timeout=30), "no callback arrived"
        assert not poll(lambda: len(receiver.requests) > 1, within=0.3), "the callback was delivered twice"
        [callback] = receiver.requests

    assert callback.method == "POST" and callback.path == "/hooks/llm"
    headers = callback.headers
    assert headers["content-type"] == "application/json"
    assert headers["x-llmserve-event"] == "job.completed"
    timestamp, signature = headers["x-llmserve-timestamp"], headers["x-llmserve-signature"]
    assert verify(WEBHOOK_SECRET.encode(), timestamp, callback.body, signature)
    assert not verify(WEBHOOK_SECRET.encode(), timestamp, callback.body + b" ", signature)
    assert not verify(b"another-secret-0123456789", timestamp, callback.body, signature)

    payload = callback.json()
    assert payload["id"] == job_id and payload["status"] == "completed" and payload["status_code"] == 200
    job = http.get(f"/v1/jobs/{job_id}").json()
    assert payload["result"] == job["result"]
    assert job["result"]["choices"][0]["message"]["content"] == "[fast] echo: call me back"

    def delivered() -> bool:
        nonlocal job
        job = http.get(f"/v1/jobs/{job_id}").json()
        return bool(job["callback"]["state"] == "delivered")

    poll(delivered, within=10, interval=0.1)
    assert job["callback"] == {"url": body["callback_url"], "state": "delivered"}
