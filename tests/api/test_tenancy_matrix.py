"""Every stored thing has an owner: two keys, every read and write path of each stored resource
(conversations and their messages, files, batches, async jobs, stored responses, cached answers,
usage, keys). The
other tenant gets the answer a missing id gets (404, the same error type), never the data, and its
attempts change nothing the owner stored. Conversations' other surfaces (WS, streams) are covered
in depth by test_conversation_tenancy.py; this module is the one place listing every resource."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from llmserve.app import create_app
from llmserve.config import load_settings
from tests.api.conftest import user

MASTER = "master-key-for-the-tenancy-matrix-0123456789"
ADMIN = {"authorization": f"Bearer {MASTER}"}
SAMPLING = {"temperature": 0, "max_tokens": 4}
Headers = dict[str, str]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = load_settings(
        data_dir=str(tmp_path_factory.mktemp("tenancy-matrix")),
        master_key=MASTER,
        cache={"exact": {"enabled": True}},
        jobs={"poll_interval_seconds": 0.05},
    )
    with TestClient(create_app(settings)) as client:
        yield client


def _key(client: TestClient, name: str) -> tuple[str, Headers]:
    made = client.post("/admin/keys", json={"name": name}, headers=ADMIN)
    assert made.status_code == 201, made.text
    return made.json()["id"], {"authorization": f"Bearer {made.json()['key']}"}


@pytest.fixture(scope="module")
def keys(app: TestClient) -> dict[str, Any]:
    owner_id, owner = _key(app, "owner")
    _, other = _key(app, "other")
    return {"owner_id": owner_id, "owner": owner, "other": other}


def _same_as_missing(client: TestClient, method: str, path: str, missing: str, headers: Headers) -> None:
    """The other tenant's answer is the answer for an id that does not exist."""
    theirs = client.request(method, path, headers=headers)
    none = client.request(method, path.replace(path.split("/")[3], missing), headers=headers)
    assert theirs.status_code == none.status_code == 404, (path, theirs.text)
    assert theirs.json()["error"]["type"] == none.json()["error"]["type"]


def _upload(client: TestClient, headers: Headers, text: str) -> str:
    files = {"file": ("in.jsonl", text.encode(), "application/jsonl")}
    uploaded = client.post("/v1/files", data={"purpose": "batch"}, files=files, headers=headers)
    assert uploaded.status_code == 200, uploaded.text
    file_id: str = uploaded.json()["id"]
    return file_id


def _line(custom_id: str) -> str:
    body = {"messages": [user("secret batch line")], **SAMPLING}
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body})


def test_conversations_and_their_messages(app: TestClient, keys: dict[str, Any]) -> None:
    owner, other = keys["owner"], keys["other"]
    started = app.post("/chat/new/message/", json={"prompt": "my pin is 4321", **SAMPLING}, headers=owner)
    conversation = started.json()["conversation_id"]
    read = app.get("/chat/get/messages/", params={"conversation_id": conversation}, headers=other)
    assert read.status_code == 404 and "4321" not in read.text
    for path, body in [
        ("/chat/new/message/", {"prompt": "and my pin?", "conversation_id": conversation, **SAMPLING}),
        ("/v1/chat/completions", {"messages": [user("pin?")], "conversation_id": conversation, **SAMPLING}),
    ]:
        assert app.post(path, json=body, headers=other).status_code == 404, path
    mine = app.get("/chat/get/messages/", params={"conversation_id": conversation}, headers=owner).json()
    assert len(mine["messages"]) == 2  # the other tenant's attempts appended nothing


def test_files_metadata_content_delete_and_listing(app: TestClient, keys: dict[str, Any]) -> None:
    owner, other = keys["owner"], keys["other"]
    file_id = _upload(app, owner, _line("f-1") + "\n")
    for method, path in [
        ("GET", f"/v1/files/{file_id}"),
        ("GET", f"/v1/files/{file_id}/content"),
        ("DELETE", f"/v1/files/{file_id}"),
    ]:
        _same_as_missing(app, method, path, "file-doesnotexist0000000000", other)
    assert file_id not in {f["id"] for f in app.get("/v1/files", headers=other).json()["data"]}
    assert app.get(f"/v1/files/{file_id}/content", headers=owner).text.startswith('{"custom_id"')
    batch = {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    assert app.post("/v1/batches", json=batch, headers=other).status_code == 404  # not a way in either


def test_batches_read_cancel_listing_and_their_output_files(app: TestClient, keys: dict[str, Any]) -> None:
    owner, other = keys["owner"], keys["other"]
    file_id = _upload(app, owner, _line("b-1") + "\n")
    body = {"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}
    batch = app.post("/v1/batches", json=body, headers=owner).json()
    for method, path in [
        ("GET", f"/v1/batches/{batch['id']}"),
        ("POST", f"/v1/batches/{batch['id']}/cancel"),
    ]:
        _same_as_missing(app, method, path, "batch_doesnotexist000000000", other)
    assert batch["id"] not in {b["id"] for b in app.get("/v1/batches", headers=other).json()["data"]}
    deadline = time.monotonic() + 60
    while (done := app.get(f"/v1/batches/{batch['id']}", headers=owner).json())["status"] != "completed":
        assert time.monotonic() < deadline, done
        time.sleep(0.1)
    output = done["output_file_id"]
    _same_as_missing(app, "GET", f"/v1/files/{output}/content", "file-doesnotexist0000000000", other)
    assert "b-1" in app.get(f"/v1/files/{output}/content", headers=owner).text


def test_async_jobs_read_and_cancel(app: TestClient, keys: dict[str, Any]) -> None:
    owner, other = keys["owner"], keys["other"]
    body = {"messages": [user("secret job")], **SAMPLING}
    submitted = app.post("/v1/async/chat/completions", json=body, headers=owner)
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    for method in ("GET", "DELETE"):
        _same_as_missing(app, method, f"/v1/jobs/{job_id}", "job_doesnotexist00000000000", other)
    assert app.get(f"/v1/jobs/{job_id}", headers=owner).status_code == 200  # the DELETE did nothing


def test_cached_answers_are_never_served_to_another_tenant(app: TestClient, keys: dict[str, Any]) -> None:
    body = {"messages": [user("cache me, tenant-scoped")], **SAMPLING}
    app.post("/v1/chat/completions", json=body, headers=keys["owner"])
    assert (
        app.post("/v1/chat/completions", json=body, headers=keys["owner"]).headers["x-llmserve-cache"]
        == "hit"
    )
    assert (
        app.post("/v1/chat/completions", json=body, headers=keys["other"]).headers["x-llmserve-cache"]
        == "miss"
    )


def test_usage_and_keys_are_the_operators_not_a_tenants(app: TestClient, keys: dict[str, Any]) -> None:
    other, owner_id = keys["other"], keys["owner_id"]
    assert app.get("/admin/usage", headers=other).status_code == 403
    assert app.get("/admin/keys", headers=other).status_code == 403
    for method in ("GET", "PATCH", "DELETE"):
        refused = app.request(method, f"/admin/keys/{owner_id}", json={"name": "mine now"}, headers=other)
        assert refused.status_code == 403, (method, refused.text)
    assert app.get(f"/admin/keys/{owner_id}", headers=ADMIN).json()["name"] == "owner"


def test_stored_responses_read_delete_items_cancel_and_continue(
    app: TestClient, keys: dict[str, Any]
) -> None:
    owner, other = keys["owner"], keys["other"]
    made = app.post("/v1/responses", json={"input": "my code is 9876", "max_output_tokens": 4}, headers=owner)
    assert made.status_code == 200, made.text
    response_id = made.json()["id"]
    missing = "resp_doesnotexist00000000000000000"
    for method, path in [
        ("GET", f"/v1/responses/{response_id}"),
        ("GET", f"/v1/responses/{response_id}/input_items"),
        ("POST", f"/v1/responses/{response_id}/cancel"),
        ("DELETE", f"/v1/responses/{response_id}"),
    ]:
        _same_as_missing(app, method, path, missing, other)
    continued = app.post(
        "/v1/responses", json={"input": "my code?", "previous_response_id": response_id}, headers=other
    )
    assert continued.status_code == 400 and "9876" not in continued.text
    assert continued.json()["error"]["code"] == "previous_response_not_found"
    assert app.get(f"/v1/responses/{response_id}", headers=owner).status_code == 200  # still there
