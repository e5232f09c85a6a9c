"""Issue 14, auth: no keys minted while auth is off, the docs behind a key, a 401 WebSocket handshake.

``client`` (conftest) has auth off; ``secured`` (test_auth.py) is an app with a master key.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from fastapi import WebSocketException
from fastapi.testclient import TestClient
from starlette.requests import HTTPConnection
from starlette.testclient import WebSocketDenialResponse

from llmserve.api.auth import authenticate
from llmserve.config import load_settings
from llmserve.services.keys import KeyService
from llmserve.storage.db import Database
from tests.api.test_auth import AS_MASTER, assert_error, bearer, create_key, secured

__all__ = ["secured"]  # the fixture, shared with test_auth.py


def test_auth_off_refuses_to_mint_a_key_and_names_the_fix(client: TestClient) -> None:
    before = client.get("/admin/keys").json()["data"]
    for role in ("admin", "user"):
        response = client.post("/admin/keys", json={"name": "sneaky", "role": role})
        assert_error(response, 403, "permission_error", "auth_disabled")
        message = response.json()["error"]["message"]
        assert "master key" in message and "llmserve keys create" in message
    assert client.get("/admin/keys").json()["data"] == before, "nothing was stored"


def test_auth_off_refuses_to_change_a_key(client: TestClient) -> None:
    response = client.patch("/admin/keys/key-that-may-exist", json={"role": "admin"})
    assert_error(response, 403, "permission_error", "auth_disabled")


def test_auth_on_still_mints_keys_with_the_master_key(secured: TestClient) -> None:
    assert create_key(secured, role="admin")["role"] == "admin"
    assert secured.get("/admin/keys", headers=AS_MASTER).status_code == 200


# --- the docs behind a key ----------------------------------------------------------------------

DOCS = ("/docs", "/redoc", "/openapi.json")


def test_auth_on_the_docs_need_a_key(secured: TestClient) -> None:
    for path in DOCS:
        response = secured.get(path)
        assert_error(response, 401, "authentication_error", "missing_api_key")
        assert response.headers["www-authenticate"].startswith("Bearer"), path
        assert_error(secured.get(path, headers=bearer("sk-llm-wrong")), 401, "authentication_error")
        assert secured.get(path, headers=AS_MASTER).status_code == 200, path
    key = create_key(secured, role="user")["key"]
    for path in DOCS:
        assert secured.get(path, headers={"x-api-key": key}).status_code == 200, path
    assert secured.get("/openapi.json", headers=bearer(key)).json()["paths"]


def test_auth_on_the_html_docs_take_the_key_in_the_query_and_carry_the_schema(secured: TestClient) -> None:
    key = create_key(secured, role="user")["key"]
    for path in ("/docs", "/redoc"):
        page = secured.get(path, params={"api_key": key})
        assert page.status_code == 200, path
        assert page.headers["content-type"].startswith("text/html")
        assert '"/v1/chat/completions"' in page.text, "the schema is inline: the page cannot fetch it"
        assert key not in page.text
        assert_error(secured.get(path, params={"api_key": "sk-llm-wrong"}), 401, "authentication_error")
    # The JSON document is not a page a browser opens: the query key is not accepted there.
    assert_error(secured.get("/openapi.json", params={"api_key": key}), 401, "authentication_error")


def test_auth_off_the_docs_stay_open(client: TestClient) -> None:
    for path in DOCS:
        assert client.get(path).status_code == 200, path
    assert client.get("/openapi.json").json()["paths"]


# --- the WebSocket handshake --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "headers", "code"),
    [
        ("/chat/ws", {}, "missing_api_key"),
        ("/chat/ws?api_key=sk-llm-wrong", {}, "invalid_api_key"),
        ("/chat/ws", {"x-api-key": "sk-llm-wrong"}, "invalid_api_key"),
    ],
)
def test_auth_on_a_websocket_without_a_valid_key_gets_an_http_401(
    secured: TestClient, path: str, headers: dict[str, str], code: str
) -> None:
    with pytest.raises(WebSocketDenialResponse) as refused, secured.websocket_connect(path, headers=headers):
        pass
    response = refused.value
    assert_error(response, 401, "authentication_error", code)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.headers["content-type"].startswith("application/json")


def test_a_server_without_the_denial_extension_still_closes_with_1008() -> None:
    settings = load_settings(master_key="master-key-for-denial-fallback-0123456789")
    keys = KeyService(Database("sqlite+aiosqlite://"), settings)

    class _Services:
        pass

    services = _Services()
    services.keys = keys  # type: ignore[attr-defined]
    app = SimpleNamespace(state=SimpleNamespace(services=services))
    scope = {"type": "websocket", "path": "/chat/ws", "query_string": b"", "headers": [], "app": app}
    with pytest.raises(WebSocketException) as closed:
        asyncio.run(authenticate(HTTPConnection(scope)))
    assert closed.value.code == 1008
