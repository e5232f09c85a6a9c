"""Async jobs in process: submit → 202, poll GET /v1/jobs/{id}, cancel, and callback_url checks.

A job's result must be the body the synchronous endpoint returns for the same request, so most
tests ask both and compare. Remote answers come from a loopback OpenAI-compatible upstream
(deterministic text), local ones from the bundled model. The apps here have their own data dirs
and a fast-polling worker.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient

from llmserve.app import create_app
from llmserve.config import load_settings
from tests.api.conftest import shape
from tests.upstreams.openai_app import deployment_for, openai_server
from tests.upstreams.server import Fault, UpstreamServer

if TYPE_CHECKING:
    from httpx2 import Response  # what starlette's TestClient answers with

SLOW_S = 2.0
LEASE_S = 0.6  # the worker renews every LEASE_S / 3, which is when it notices a cancellation
WEBHOOK_SECRET = "whsec-async-api-tests-0123456789"
FINISHED = ("completed", "failed", "cancelled")


@pytest.fixture(scope="module")
def upstreams() -> Iterator[dict[str, UpstreamServer]]:
    servers = {"fast": openai_server("fast"), "slow": openai_server("slow")}
    servers["slow"].fail_always(Fault("delay", delay_s=SLOW_S))
    for server in servers.values():
        server.start()
    try:
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, upstreams: dict[str, UpstreamServer]
) -> Iterator[TestClient]:
    settings = load_settings(
        data_dir=str(tmp_path_factory.mktemp("async-jobs-api")),
        models=[
            {"name": "tiny-chat", "model": "tiny-chat"},
            deployment_for("remote", upstreams["fast"]),
            deployment_for("remote-slow", upstreams["slow"]),
        ],
        jobs={"poll_interval_seconds": 0.05, "lease_seconds": LEASE_S},
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def signed(
    tmp_path_factory: pytest.TempPathFactory, upstreams: dict[str, UpstreamServer]
) -> Iterator[TestClient]:
    """A server that signs callbacks, with the default guard against internal targets."""
    settings = load_settings(
        data_dir=str(tmp_path_factory.mktemp("async-jobs-signed")),
        models=[deployment_for("remote", upstreams["fast"])],
        jobs={"poll_interval_seconds": 0.05, "webhook_secret": WEBHOOK_SECRET},
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def tenant() -> dict[str, str]:
    return {"authorization": f"Bearer tenant-{uuid.uuid4().hex}"}


def chat_body(text: str, model: str = "remote", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 16, **extra}


def submit(
    client: TestClient, headers: dict[str, str], body: dict[str, Any], kind: str = "chat/completions"
) -> str:
    response = client.post(f"/v1/async/{kind}", json=body, headers=headers)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "queued" and job["job_id"] == job["id"] and job["id"].startswith("job_")
    assert job["result"] is None and job["error"] is None
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    return str(job["id"])


def wait_for(
    client: TestClient,
    headers: dict[str, str],
    job_id: str,
    statuses: tuple[str, ...] = FINISHED,
    timeout: float = 60,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = client.get(f"/v1/jobs/{job_id}", headers=headers)
        assert response.status_code == 200, response.text
        job = response.json()
        if job["status"] in statuses:
            return job
        time.sleep(0.03)
    pytest.fail(f"job {job_id} not in {statuses} after {timeout:.0f}s: {job}")


def assert_error(response: Response, status: int, code: str | None = None, param: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"] and error["type"]
    if code is not None:
        assert error["code"] == code, error
    if param is not None:
        assert error["param"] == param, error


def without_ids(body: dict[str, Any]) -> dict[str, Any]:
    """A chat/completion body minus what differs between any two calls (its id and clock)."""
    return {key: value for key, value in body.items() if key not in ("id", "created")}


# --- results ------------------------------------------------------------------------------------


def test_a_remote_chat_job_returns_exactly_the_sync_answer(
    client: TestClient, tenant: dict[str, str]
) -> None:
    body = chat_body("what is the answer", temperature=0)
    job = wait_for(client, tenant, submit(client, tenant, body))
    assert job["status"] == "completed" and job["status_code"] == 200, job
    assert job["error"] is None and job["attempts"] == 1
    assert job["created_at"] <= job["started_at"] <= job["completed_at"]
    sync = client.post("/v1/chat/completions", json=body, headers=tenant)
    assert sync.status_code == 200, sync.text
    assert without_ids(job["result"]) == without_ids(sync.json())
    assert job["result"]["choices"][0]["message"]["content"] == "[fast] echo: what is the answer"


def test_a_local_chat_job_has_the_sync_body_shape(client: TestClient, tenant: dict[str, str]) -> None:
    body = chat_body("Say hi", model="tiny-chat", max_tokens=4, temperature=0)
    job = wait_for(client, tenant, submit(client, tenant, body))
    assert job["status"] == "completed" and job["status_code"] == 200, job
    sync = client.post("/v1/chat/completions", json=body, headers=tenant)
    assert sync.status_code == 200, sync.text
    assert shape(job["result"]) == shape(sync.json())
    assert job["result"]["object"] == "chat.completion" and job["result"]["model"] == "tiny-chat"
    assert job["result"]["choices"][0]["message"]["content"]
    assert 0 < job["result"]["usage"]["completion_tokens"] <= 4


def test_completion_and_embedding_jobs_return_the_sync_answers(
    client: TestClient, tenant: dict[str, str]
) -> None:
    completion = {"model": "remote", "prompt": "once upon a time", "max_tokens": 8}
    embedding = {"model": "remote", "input": ["first text", "second text", "third"]}
    completion_id = submit(client, tenant, completion, "completions")
    embedding_id = submit(client, tenant, embedding, "embeddings")

    done = wait_for(client, tenant, completion_id)
    assert done["status"] == "completed" and done["endpoint"] == "/v1/completions", done
    sync = client.post("/v1/completions", json=completion, headers=tenant).json()
    assert without_ids(done["result"]) == without_ids(sync) and done["result"]["object"] == "text_completion"

    done = wait_for(client, tenant, embedding_id)
    assert done["status"] == "completed" and done["endpoint"] == "/v1/embeddings", done
    sync = client.post("/v1/embeddings", json=embedding, headers=tenant).json()
    assert done["result"]["data"] == sync["data"]
    assert [item["index"] for item in done["result"]["data"]] == [0, 1, 2]


def test_a_job_the_endpoint_refuses_fails_with_that_error(client: TestClient, tenant: dict[str, str]) -> None:
    job = wait_for(client, tenant, submit(client, tenant, chat_body("hi", model="no-such-model")))
    assert job["status"] == "failed" and job["status_code"] == 404, job
    assert job["result"] is None
    assert job["error"]["code"] == "model_not_found"
    sync = client.post("/v1/chat/completions", json=chat_body("hi", model="no-such-model"), headers=tenant)
    assert sync.status_code == 404 and sync.json()["error"] == job["error"]


# --- refused at submission ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"model": "remote"},
        chat_body("hi", max_tokens=-1),
        chat_body("hi", temperature=7),
        chat_body("hi", n="two"),
    ],
)
def test_an_invalid_body_gets_the_sync_endpoints_400_at_submission_and_nothing_runs(
    client: TestClient, upstreams: dict[str, UpstreamServer], tenant: dict[str, str], body: dict[str, Any]
) -> None:
    upstreams["fast"].reset_counters()
    response = client.post("/v1/async/chat/completions", json=body, headers=tenant)
    assert_error(response, 400)
    sync = client.post("/v1/chat/completions", json=body, headers=tenant)
    assert response.json() == sync.json(), "the same mistake gets the same error, sync or async"
    time.sleep(0.3)  # several worker polls: a job queued anyway would have reached the upstream
    assert upstreams["fast"].requests == [], "a refused job must not run"


@pytest.mark.parametrize(
    ("body", "param"),
    [(chat_body("hi", stream=True), "stream"), ({**chat_body("hi"), "callback_url": 42}, "callback_url")],
)
def test_streaming_or_a_non_string_callback_is_400_and_nothing_runs(
    client: TestClient,
    upstreams: dict[str, UpstreamServer],
    tenant: dict[str, str],
    body: dict[str, Any],
    param: str,
) -> None:
    upstreams["fast"].reset_counters()
    assert_error(client.post("/v1/async/chat/completions", json=body, headers=tenant), 400, param=param)
    time.sleep(0.3)
    assert upstreams["fast"].requests == [], "a refused job must not run"


def test_an_unknown_job_is_404(client: TestClient, tenant: dict[str, str]) -> None:
    assert_error(client.get("/v1/jobs/job_doesnotexist", headers=tenant), 404, "job_not_found")
    assert_error(client.delete("/v1/jobs/job_doesnotexist", headers=tenant), 404, "job_not_found")


def test_a_callback_url_needs_a_webhook_secret(client: TestClient, tenant: dict[str, str]) -> None:
    body = {**chat_body("hi"), "callback_url": "https://hooks.example.com/llm"}
    assert_error(
        client.post("/v1/async/chat/completions", json=body, headers=tenant),
        400,
        "webhooks_disabled",
        "callback_url",
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost:8080/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.7/hook",
        "http://192.168.1.1/hook",
    ],
)
def test_a_callback_to_an_internal_address_is_refused(
    signed: TestClient, tenant: dict[str, str], url: str
) -> None:
    body = {**chat_body("hi"), "callback_url": url}
    response = signed.post("/v1/async/chat/completions", json=body, headers=tenant)
    assert_error(response, 400, "callback_url_refused", "callback_url")


@pytest.mark.parametrize(
    "url", ["ftp://example.com/hook", "file:///etc/passwd", "http://user:pw@example.com/", "not a url"]
)
def test_a_callback_url_that_is_not_http_is_refused(
    signed: TestClient, tenant: dict[str, str], url: str
) -> None:
    body = {**chat_body("hi"), "callback_url": url}
    response = signed.post("/v1/async/chat/completions", json=body, headers=tenant)
    assert_error(response, 400, "callback_url_invalid", "callback_url")


# --- cancelling ---------------------------------------------------------------------------------


def test_cancelling_a_finished_job_is_409_and_keeps_its_result(
    client: TestClient, tenant: dict[str, str]
) -> None:
    job = wait_for(client, tenant, submit(client, tenant, chat_body("keep me")))
    assert job["status"] == "completed"
    response = client.delete(f"/v1/jobs/{job['id']}", headers=tenant)
    assert_error(response, 409)
    assert "completed" in response.json()["error"]["message"]
    again = client.get(f"/v1/jobs/{job['id']}", headers=tenant).json()
    assert again["status"] == "completed" and again["result"] == job["result"]


def test_cancelling_a_running_job_stops_it_and_no_result_appears(
    client: TestClient, upstreams: dict[str, UpstreamServer], tenant: dict[str, str]
) -> None:
    slow = upstreams["slow"]
    slow.reset_counters()
    job_id = submit(client, tenant, chat_body("never mind", model="remote-slow"))
    assert wait_for(client, tenant, job_id, ("running",), timeout=10)["status"] == "running"
    assert slow.wait_for(lambda: len(slow.requests) == 1), "the job reached the upstream"

    response = client.delete(f"/v1/jobs/{job_id}", headers=tenant)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled" and response.json()["completed_at"]
    # The worker lets go of the upstream call (the provider stops working for nobody) ...
    assert slow.wait_for(lambda: slow.disconnects == 1, timeout=SLOW_S), "the upstream call was not dropped"
    time.sleep(SLOW_S / 2)
    # ... and nothing it might still get is stored.
    job = client.get(f"/v1/jobs/{job_id}", headers=tenant).json()
    assert job["status"] == "cancelled" and job["result"] is None and job["status_code"] is None
    # Cancelling again is harmless.
    assert client.delete(f"/v1/jobs/{job_id}", headers=tenant).json()["status"] == "cancelled"


# --- retention ----------------------------------------------------------------------------------

RETENTION_S = 1.0


@pytest.fixture(scope="module")
def short_retention(
    tmp_path_factory: pytest.TempPathFactory, upstreams: dict[str, UpstreamServer]
) -> Iterator[TestClient]:
    """Finished jobs are kept RETENTION_S; the sweeper looks every LEASE_S / 2."""
    settings = load_settings(
        data_dir=str(tmp_path_factory.mktemp("async-jobs-retention")),
        models=[deployment_for("remote-slow", upstreams["slow"])],
        jobs={"poll_interval_seconds": 0.05, "lease_seconds": LEASE_S, "result_ttl_seconds": RETENTION_S},
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_retention_counts_from_when_a_job_finished(
    short_retention: TestClient, tenant: dict[str, str]
) -> None:
    # The job runs longer than the retention: it must not vanish while it runs, nor right after.
    job_id = submit(short_retention, tenant, chat_body("slow one", model="remote-slow"))
    job = wait_for(short_retention, tenant, job_id, timeout=SLOW_S + 10)
    assert job["status"] == "completed", job
    assert job["result"]["choices"][0]["message"]["content"] == "[slow] echo: slow one"
    assert job["expires_at"] >= job["completed_at"] + RETENTION_S - 1
    # Once the retention has passed since it finished, it is gone.
    deadline = time.monotonic() + RETENTION_S + 5
    while short_retention.get(f"/v1/jobs/{job_id}", headers=tenant).status_code == 200:
        assert time.monotonic() < deadline, "a finished job outlived its retention"
        time.sleep(0.1)
    assert_error(short_retention.get(f"/v1/jobs/{job_id}", headers=tenant), 404, "job_not_found")
