"""Authentication through the HTTP API: keys from /admin/keys open the API, nothing else does.

``secured`` is an app with a master key (auth on); the tier's shared ``client`` has none (auth off).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import openai
import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient
from starlette.requests import Request
from starlette.testclient import WebSocketDenialResponse

from llmserve.api.auth import authenticate, principal_of
from llmserve.app import create_app
from llmserve.config import load_settings
from llmserve.services.keys import ensure_model_allowed
from tests.api.conftest import user

if TYPE_CHECKING:
    from httpx2 import Response  # what starlette's TestClient answers with

MASTER = "master-key-for-api-tests-0123456789"
AS_MASTER = {"authorization": f"Bearer {MASTER}"}
# A second group a restricted key may not use. Remote (nothing listens there), not a second local
# model: /ready loads every local model at once, and concurrent loads break each other (see report).
OTHER = "remote-other"
CHAT = "/v1/chat/completions"


def _model_check_router() -> APIRouter:
    """A route standing in for the chat pipeline's check, once the group is resolved."""
    router = APIRouter()

    @router.get("/test-only/models/{group}")
    async def check(group: str, request: Request) -> dict[str, str]:
        ensure_model_allowed(principal_of(request), group)
        return {"allowed": group}

    return router


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data_dir: Path = tmp_path_factory.mktemp("auth-api")
    settings = load_settings(
        data_dir=str(data_dir),
        master_key=MASTER,
        models=[
            {"name": "tiny-chat", "model": "tiny-chat"},
            {"name": OTHER, "provider": "openai", "model": "gpt-x", "api_base": "http://127.0.0.1:9/v1"},
        ],
        limits={"per_key": {"rpm": 600}},
    )
    app: FastAPI = create_app(settings)
    app.include_router(_model_check_router(), dependencies=[Depends(authenticate)])
    with TestClient(app) as test_client:
        yield test_client


def create_key(client: TestClient, **fields: Any) -> dict[str, Any]:
    response = client.post("/admin/keys", json=fields, headers=AS_MASTER)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def assert_error(response: Response, status: int, error_type: str, code: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["type"] == error_type
    if code is not None:
        assert error["code"] == code


def chat(client: TestClient, headers: dict[str, str], **body: Any) -> Response:
    payload = {"messages": [user("Hi")], "max_tokens": 4, "temperature": 0, **body}
    return client.post(CHAT, json=payload, headers=headers)


# --- auth off -----------------------------------------------------------------------------------


def test_without_a_master_key_everything_is_open(client: TestClient) -> None:
    assert client.get("/v1/models").status_code == 200
    assert chat(client, {}).status_code == 200
    assert client.get("/admin/deployments").status_code == 200
    # Listing is open, minting is not (tests/api/test_hardening_auth.py): such a key would outlive auth off.
    created = client.post("/admin/keys", json={"name": "made while auth is off"})
    assert_error(created, 403, "permission_error", "auth_disabled")
    assert client.get("/admin/keys").status_code == 200
    # A key is not needed, and a wrong one is not refused either.
    assert client.get("/v1/models", headers=bearer("sk-llm-anything")).status_code == 200


# --- auth on ------------------------------------------------------------------------------------


def test_no_key_is_401_with_an_openai_error(secured: TestClient) -> None:
    response = secured.get("/v1/models")
    assert_error(response, 401, "authentication_error", "missing_api_key")
    assert response.headers["www-authenticate"].startswith("Bearer")
    for method, path in [
        ("POST", CHAT),
        ("POST", "/chat/new/message/"),
        ("POST", "/chat"),
        ("GET", "/chat/stream"),
    ]:
        assert secured.request(method, path, json={}).status_code == 401, path


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": "Bearer sk-llm-wrong"},
        {"x-api-key": "sk-llm-wrong"},
        {"authorization": f"Basic {MASTER}"},  # the master key, but not as a bearer token
        {"authorization": f"Bearer {MASTER[:-1]}"},
    ],
)
def test_a_wrong_key_is_401(secured: TestClient, headers: dict[str, str]) -> None:
    assert_error(secured.get("/v1/models", headers=headers), 401, "authentication_error")


def test_health_and_ready_stay_open(secured: TestClient) -> None:
    assert secured.get("/health").status_code == 200
    assert secured.get("/ready").status_code in (200, 503)  # 503 only while the model loads


def test_a_created_key_works_as_bearer_and_as_x_api_key(secured: TestClient) -> None:
    key = create_key(secured, name="app")["key"]
    assert secured.get("/v1/models", headers=bearer(key)).status_code == 200
    assert secured.get("/v1/models", headers={"x-api-key": key}).status_code == 200
    response = chat(secured, {"x-api-key": key})
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"]


def test_the_master_key_calls_everything(secured: TestClient) -> None:
    assert chat(secured, AS_MASTER).status_code == 200
    assert secured.get("/admin/keys", headers=AS_MASTER).status_code == 200


def test_admin_routes_need_an_admin_key(secured: TestClient) -> None:
    user_key = create_key(secured, role="user")["key"]
    admin_key = create_key(secured, role="admin")["key"]
    for path in ("/admin/keys", "/admin/usage", "/admin/deployments"):
        assert_error(secured.get(path, headers=bearer(user_key)), 403, "permission_error", "admin_required")
        assert secured.get(path, headers=bearer(admin_key)).status_code == 200, path
        assert_error(secured.get(path), 401, "authentication_error")
    made_by_admin = secured.post("/admin/keys", json={}, headers=bearer(admin_key))
    assert made_by_admin.status_code == 201


def test_create_list_patch_revoke(secured: TestClient) -> None:
    created = create_key(
        secured,
        name="lifecycle",
        models=["tiny-chat"],
        rpm=60,
        max_budget_usd=12.5,
        budget_period="daily",
        priority=2,
        guardrails={"pii_input": "mask"},
        metadata={"team": "search"},
    )
    key, key_id = created["key"], created["id"]
    assert key.startswith("sk-llm-") and created["key_prefix"] == key[:12]
    assert created["models"] == ["tiny-chat"] and created["max_budget_usd"] == 12.5

    listing = secured.get("/admin/keys", headers=AS_MASTER)
    assert listing.status_code == 200
    assert key not in listing.text, "the secret is shown once, at creation"
    [listed] = [entry for entry in listing.json()["data"] if entry["id"] == key_id]
    assert set(listed) == {
        "id", "name", "key_prefix", "role", "models", "rpm", "tpm", "max_parallel", "max_budget_usd",
        "budget_period", "priority", "guardrails", "expires_at", "created_at", "revoked_at", "metadata",
    }  # fmt: skip
    assert {k: v for k, v in created.items() if k != "key"} == listed

    patched = secured.patch(f"/admin/keys/{key_id}", json={"rpm": None, "name": "renamed"}, headers=AS_MASTER)
    assert patched.status_code == 200, patched.text
    assert (patched.json()["rpm"], patched.json()["name"]) == (None, "renamed")
    assert patched.json()["metadata"] == {"team": "search"}
    assert secured.get(f"/admin/keys/{key_id}", headers=AS_MASTER).json() == patched.json()
    assert secured.get("/v1/models", headers=bearer(key)).status_code == 200

    revoked = secured.delete(f"/admin/keys/{key_id}", headers=AS_MASTER)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert_error(secured.get("/v1/models", headers=bearer(key)), 401, "authentication_error")
    assert_error(chat(secured, bearer(key)), 401, "authentication_error")


def test_an_expired_key_is_401(secured: TestClient) -> None:
    created = create_key(secured, expires_at=(datetime.now(UTC) + timedelta(days=1)).isoformat())
    assert secured.get("/v1/models", headers=bearer(created["key"])).status_code == 200
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    assert secured.patch(
        f"/admin/keys/{created['id']}", json={"expires_at": past}, headers=AS_MASTER
    ).is_success
    response = secured.get("/v1/models", headers=bearer(created["key"]))
    assert_error(response, 401, "authentication_error")
    assert "expired" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    "body",
    [
        {"role": "root"},
        {"budget_period": "weekly"},
        {"models": ["no-such-group"]},
        {"models": []},
        {"rpm": 0},
        {"max_budget_usd": -1},
        {"guardrails": {"no_such_rule": True}},
        {"unknown_field": 1},
    ],
)
def test_invalid_keys_are_400(secured: TestClient, body: dict[str, Any]) -> None:
    assert_error(secured.post("/admin/keys", json=body, headers=AS_MASTER), 400, "invalid_request_error")


def test_unknown_key_ids_are_404(secured: TestClient) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        response = secured.request(method, "/admin/keys/nope", json={}, headers=AS_MASTER)
        assert response.status_code == 404, (method, response.text)


def test_a_key_limited_to_some_models_gets_403_for_others(secured: TestClient) -> None:
    key = create_key(secured, models=["tiny-chat"])["key"]
    allowed = secured.get("/test-only/models/tiny-chat", headers=bearer(key))
    assert allowed.status_code == 200, allowed.text
    assert_error(
        secured.get(f"/test-only/models/{OTHER}", headers=bearer(key)),
        403,
        "permission_error",
        "model_not_allowed",
    )
    any_model = create_key(secured)["key"]
    assert secured.get(f"/test-only/models/{OTHER}", headers=bearer(any_model)).status_code == 200


def test_chat_with_a_model_the_key_may_not_use_is_403(secured: TestClient) -> None:
    key = create_key(secured, models=["tiny-chat"])["key"]
    assert_error(chat(secured, bearer(key), model=OTHER), 403, "permission_error")


def test_usage_is_recorded_under_the_keys_id(secured: TestClient) -> None:
    created = create_key(secured)
    assert chat(secured, bearer(created["key"])).status_code == 200
    report = secured.get("/admin/usage", params={"api_key": created["id"]}, headers=AS_MASTER)
    assert report.status_code == 200, report.text
    assert [row["requests"] for row in report.json()["data"]] == [1]


def test_the_openai_sdk_works_with_a_created_key(secured: TestClient) -> None:
    key = create_key(secured, name="sdk")["key"]
    sdk = openai.OpenAI(base_url="http://testserver/v1", api_key=key, http_client=secured, max_retries=0)
    completion = sdk.chat.completions.create(
        model="tiny-chat", messages=[{"role": "user", "content": "Hi"}], max_tokens=4, temperature=0
    )
    assert completion.choices[0].message.content
    assert [model.id for model in sdk.models.list()] == ["tiny-chat", OTHER]
    wrong = openai.OpenAI(
        base_url="http://testserver/v1", api_key="sk-llm-wrong", http_client=secured, max_retries=0
    )
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()


def test_the_websocket_needs_a_key_too(secured: TestClient) -> None:
    # The handshake is refused with an HTTP 401 (tests/api/test_hardening_auth.py checks its body).
    with pytest.raises(WebSocketDenialResponse) as refused, secured.websocket_connect("/chat/ws") as ws:
        ws.send_text('{"prompt": "Hi", "max_tokens": 4}')
        ws.receive_json()
    assert refused.value.status_code == 401
    key = create_key(secured)["key"]
    for path, headers in [(f"/chat/ws?api_key={key}", {}), ("/chat/ws", {"x-api-key": key})]:
        with secured.websocket_connect(path, headers=headers) as ws:
            ws.send_text('{"prompt": "Hi", "max_tokens": 4, "temperature": 0}')
            messages = [ws.receive_json()]
            while messages[-1]["type"] == "chunk":
                messages.append(ws.receive_json())
        assert messages[-1]["type"] == "complete", messages
