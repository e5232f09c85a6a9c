"""Issue 14, models: a model that cannot load answers each request at once with a 503 naming it (no
reload, no 1 s Retry-After), and /ready?model= tells the groups apart."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from llmserve.app import create_app
from llmserve.config import load_settings

MISSING = "/nonexistent/llmserve-test/model-dir"


@pytest.fixture(scope="module")
def broken_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data_dir: Path = tmp_path_factory.mktemp("broken-model")
    settings = load_settings(
        data_dir=str(data_dir),
        models=[
            {"name": "good", "provider": "local", "model": "tiny-chat"},
            {"name": "broken", "provider": "local", "model": MISSING},
        ],
    )
    with TestClient(create_app(settings)) as client:
        yield client


def _chat(client: TestClient, model: str) -> object:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    return client.post("/v1/chat/completions", json=body)


def test_a_broken_model_is_a_fast_503_naming_it_without_a_one_second_retry(
    broken_client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(3):
        started = time.monotonic()
        with caplog.at_level(logging.ERROR):
            response = _chat(broken_client, "broken")
        assert time.monotonic() - started < 5
        assert response.status_code == 503, response.text  # type: ignore[attr-defined]
        error = response.json()["error"]  # type: ignore[attr-defined]
        assert error["code"] == "model_load_failed" and "broken" in error["message"]
        assert response.headers.get("retry-after") != "1"  # type: ignore[attr-defined]
    assert not [r for r in caplog.records if r.exc_info], "no traceback per request"


def test_ready_per_group(broken_client: TestClient) -> None:
    _chat(broken_client, "broken")
    assert _chat(broken_client, "good").status_code == 200  # type: ignore[attr-defined]
    assert broken_client.get("/ready?model=good").status_code == 200
    broken = broken_client.get("/ready?model=broken")
    assert broken.status_code == 503 and broken.json()["models"] == {"broken": "failed"}
    whole = broken_client.get("/ready")
    assert whole.status_code == 503 and whole.json()["models"]["good"] == "ready"
