"""Issue 14, /admin/keys: out-of-range fields are 400 at the boundary, and the listing never breaks."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from llmserve.app import create_app
from llmserve.config import load_settings
from tests.api.test_auth import AS_MASTER, assert_error, create_key, secured

__all__ = ["secured"]  # the fixture, shared with test_auth.py


def _nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"metadata": _nested(300)}, "metadata"),
        ({"rpm": 2**70}, "rpm"),
        ({"tpm": 2**31}, "tpm"),
        ({"expires_at": "9999-12-31T23:59:59-05:00"}, "expires_at"),
        ({"expires_at": "9999-12-31T23:59:59Z"}, "expires_at"),
        ({"max_budget_usd": 999999999}, "max_budget_usd"),
        # Coercible values of the wrong JSON type (the body was parsed laxly first; found by tests/fuzz).
        ({"priority": True}, "priority"),
        ({"rpm": "60"}, "rpm"),
        ({"max_parallel": "2"}, "max_parallel"),
    ],
)
def test_out_of_range_key_fields_are_400_and_nothing_is_stored(
    secured: TestClient, body: dict[str, Any], param: str
) -> None:
    before = secured.get("/admin/keys", headers=AS_MASTER).json()["data"]
    response = secured.post("/admin/keys", json=body, headers=AS_MASTER)
    assert_error(response, 400, "invalid_request_error")
    assert response.json()["error"]["param"] == param
    key_id = create_key(secured)["id"]
    assert_error(
        secured.patch(f"/admin/keys/{key_id}", json=body, headers=AS_MASTER), 400, "invalid_request_error"
    )
    after = secured.get("/admin/keys", headers=AS_MASTER)
    assert after.status_code == 200
    assert len(after.json()["data"]) == len(before) + 1


def test_the_edges_of_the_documented_ranges_round_trip(secured: TestClient) -> None:
    created = create_key(
        secured,
        rpm=2**31 - 1,
        max_budget_usd=900_000_000,
        expires_at="9998-12-31T23:59:59Z",
        metadata=_nested(8),
    )
    listing = secured.get("/admin/keys", headers=AS_MASTER)
    assert listing.status_code == 200
    [listed] = [key for key in listing.json()["data"] if key["id"] == created["id"]]
    assert (listed["rpm"], listed["max_budget_usd"]) == (2**31 - 1, 900_000_000)
    assert listed["metadata"] == _nested(8)


def test_a_key_stored_before_the_metadata_bounds_does_not_break_the_listing(tmp_path: Path) -> None:
    # Before the bounds, metadata nested 300 deep was stored as given; every GET /admin/keys then
    # answered 500 (the JSON encoder gives up at depth) until someone edited the database by hand.
    master = "master-key-legacy-metadata-0123456789"
    headers = {"authorization": f"Bearer {master}"}
    settings = load_settings(data_dir=str(tmp_path), master_key=master)
    with TestClient(create_app(settings)) as client:
        made = client.post("/admin/keys", json={"name": "legacy"}, headers=headers).json()
    with sqlite3.connect(next(tmp_path.glob("*.db"))) as db:
        db.execute("UPDATE api_keys SET metadata = ?", (json.dumps(_nested(300)),))
    with TestClient(create_app(settings)) as client:
        listing = client.get("/admin/keys", headers=headers)
        assert listing.status_code == 200, listing.text
        shown = client.get(f"/admin/keys/{made['id']}", headers=headers).json()["metadata"]
        assert "out of bounds" in shown["llmserve_note"]
        assert client.get("/v1/models", headers={"authorization": f"Bearer {made['key']}"}).status_code == 200
        repaired = client.patch(
            f"/admin/keys/{made['id']}", json={"metadata": {"team": "a"}}, headers=headers
        )
        assert repaired.status_code == 200 and repaired.json()["metadata"] == {"team": "a"}
