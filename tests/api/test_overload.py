"""Overload sheds early (issue 14): a local model group admits what its engine decodes at once, a short
wait, then 503 with Retry-After; one request may not ask for more than
engine.max_total_tokens_per_request tokens (n x max_tokens). A dedicated app with small limits (one row
decoded at a time, one waiting seat, a 0.3 s wait) keeps it fast and deterministic."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from llmserve.app import create_app
from llmserve.config import BUNDLED_MODEL_ID, EngineSettings, QueueSettings, load_settings
from llmserve.limits.queue import AdmissionQueue
from tests.api.conftest import user
from tests.polling import wait_until

WAIT_S = 0.3
CHAT = "/v1/chat/completions"
LONG = {"messages": [user("tell a long story")], "max_tokens": 400, "ignore_eos": True, "temperature": 0}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data_dir: Path = tmp_path_factory.mktemp("overload-data")
    settings = load_settings(
        data_dir=str(data_dir),
        engine={"max_batch_size": 1, "max_total_tokens_per_request": 400},
        queue={"max_queued": 1, "queue_timeout_seconds": WAIT_S},
    )
    with TestClient(create_app(settings)) as test_client:
        ok = test_client.post(CHAT, json={"messages": [user("hi")], "max_tokens": 1})  # loads the model
        assert ok.status_code == 200, ok.text
        yield test_client


def queue_of(client: TestClient) -> AdmissionQueue:
    queue = client.app.state.services.chat.pipeline.admission.queue  # type: ignore[attr-defined]
    assert isinstance(queue, AdmissionQueue)
    return queue


def post_in_background(client: TestClient, body: dict[str, Any]) -> tuple[threading.Thread, list[Any]]:
    answers: list[Any] = []
    thread = threading.Thread(target=lambda: answers.append(client.post(CHAT, json=body)), daemon=True)
    thread.start()
    return thread, answers


def test_the_defaults_shed_early() -> None:
    queue, engine = QueueSettings(), EngineSettings()
    assert queue.queue_timeout_seconds <= 1.0
    assert queue.max_queued <= engine.max_batch_size
    assert engine.max_total_tokens_per_request == 8192
    assert engine.request_timeout_seconds == 120


def test_n_times_max_tokens_beyond_the_cap_is_400_naming_both(client: TestClient) -> None:
    response = client.post(CHAT, json={"messages": [user("hi")], "n": 2, "max_tokens": 201})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert "n x max_tokens" in error["message"] and "402" in error["message"]
    assert "engine.max_total_tokens_per_request" in error["message"]
    assert error["param"] == "max_tokens"


def test_n_times_max_tokens_within_the_cap_is_served(client: TestClient) -> None:
    response = client.post(CHAT, json={"messages": [user("hi")], "n": 2, "max_tokens": 2})
    assert response.status_code == 200, response.text
    assert len(response.json()["choices"]) == 2


def test_a_full_group_answers_503_with_retry_after_within_the_short_wait(client: TestClient) -> None:
    queue = queue_of(client)
    running, _ = post_in_background(client, LONG)  # takes the group's only slot for seconds
    try:
        wait_until(lambda: queue.running(BUNDLED_MODEL_ID) == 1, within=10, interval=0.01)
        waiting, waited = post_in_background(client, LONG)  # takes the one waiting seat
        wait_until(lambda: queue.queued(BUNDLED_MODEL_ID) == 1, within=10, interval=0.01)

        started = time.monotonic()
        full = client.post(CHAT, json=LONG)
        assert full.status_code == 503, full.text
        assert full.json()["error"]["code"] == "queue_full"
        assert float(full.headers["retry-after"]) <= WAIT_S + 1
        assert time.monotonic() - started < 1.0

        waiting.join(10)
        assert waited and waited[0].status_code == 503, waited
        assert waited[0].json()["error"]["code"] == "queue_timeout"
        assert "retry-after" in waited[0].headers
    finally:
        running.join(60)
