"""A browser on an allowed origin can read llmserve's headers: the request id, Retry-After, the
rate-limit headers and x-llmserve-*. Without Access-Control-Expose-Headers it could read none."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from llmserve.app import create_app
from llmserve.config import load_settings

ORIGIN = "http://app.example"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = load_settings(
        data_dir=str(tmp_path_factory.mktemp("cors")),
        server={"cors_origins": [ORIGIN]},
        limits={"per_key": {"rpm": 1}},
    )
    with TestClient(create_app(settings)) as client:
        yield client


def _exposed(response_headers: dict[str, str]) -> set[str]:
    return {name.strip().lower() for name in response_headers["access-control-expose-headers"].split(",")}


def test_an_answer_exposes_every_llmserve_header_it_carries(browser: TestClient) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    answer = browser.post("/v1/chat/completions", json=body, headers={"origin": ORIGIN})
    assert answer.status_code == 200, answer.text
    carried = {name for name in answer.headers if name.startswith(("x-llmserve-", "x-request-id"))}
    assert carried and carried <= _exposed(dict(answer.headers))
    refused = browser.post("/v1/chat/completions", json=body, headers={"origin": ORIGIN})
    assert refused.status_code == 429
    limits = {name for name in refused.headers if name.startswith(("x-ratelimit-", "retry-after"))}
    assert {"retry-after", "x-ratelimit-limit"} <= limits <= _exposed(dict(refused.headers))


def test_another_origin_gets_no_cors_headers(browser: TestClient) -> None:
    answer = browser.get("/v1/models", headers={"origin": "http://elsewhere.example"})
    assert "access-control-allow-origin" not in answer.headers
