"""Issue 14, async jobs: a key's model permission is checked at submit, before anything is queued."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import user
from tests.api.test_auth import OTHER, assert_error, bearer, create_key, secured

__all__ = ["secured"]  # the fixture, shared with test_auth.py

CHAT = {"messages": [user("Hi")], "max_tokens": 4}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/async/chat/completions", {**CHAT, "model": OTHER}),
        ("/v1/async/completions", {"prompt": "Hi", "max_tokens": 4, "model": OTHER}),
        ("/v1/async/embeddings", {"input": "Hi", "model": OTHER}),
        ("/v1/async/chat/completions", {**CHAT, "model": "no-such-group"}),
    ],
)
def test_async_submit_with_a_model_the_key_may_not_use_is_403(
    secured: TestClient, path: str, body: dict[str, object]
) -> None:
    key = create_key(secured, models=["tiny-chat"])["key"]
    response = secured.post(path, json=body, headers=bearer(key))
    assert_error(response, 403, "permission_error", "model_not_allowed")
    assert response.json()["error"]["param"] == "model"
    assert "location" not in response.headers


def test_async_submit_without_a_model_checks_the_default_group(secured: TestClient) -> None:
    key = create_key(secured, models=[OTHER])["key"]  # the default group is tiny-chat
    response = secured.post("/v1/async/chat/completions", json=CHAT, headers=bearer(key))
    assert_error(response, 403, "permission_error", "model_not_allowed")


def test_async_submit_with_an_allowed_model_is_queued(secured: TestClient) -> None:
    restricted = create_key(secured, models=["tiny-chat"])["key"]
    unrestricted = create_key(secured)["key"]
    for key, model in [(restricted, "tiny-chat"), (unrestricted, OTHER), (restricted, None)]:
        body = {**CHAT, "model": model} if model else CHAT
        response = secured.post("/v1/async/chat/completions", json=body, headers=bearer(key))
        assert response.status_code == 202, response.text
        job_id = response.json()["job_id"]
        assert secured.get(f"/v1/jobs/{job_id}", headers=bearer(key)).status_code == 200
