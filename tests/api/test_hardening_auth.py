"""Issue 14, auth: no keys minted while auth is off, the docs behind a key, a 401 WebSocket handshake.

``client`` (conftest) has auth off; ``secured`` (test_auth.py) is an app with a master key.
"""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.test_auth import AS_MASTER, assert_error, create_key, secured

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
