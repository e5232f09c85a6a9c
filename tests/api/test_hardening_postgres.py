"""Issue 14 on PostgreSQL: its text columns refuse NUL, so a NUL that reached storage was a 500 after
the model had answered. Text no route can keep is a 400 before anything runs or is stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from llmserve.app import create_app
from llmserve.config import load_settings
from tests.fixtures_db import PostgresServer, _unavailable

pytestmark = pytest.mark.postgres

MASTER = "master-key-for-pg-hardening-0123456789"
JSON = {"content-type": "application/json", "authorization": f"Bearer {MASTER}"}


@pytest.fixture(scope="module")
def pg_client(
    postgres_database_url: str | PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    if isinstance(postgres_database_url, PostgresServer):
        _unavailable(postgres_database_url.problem)
    data_dir: Path = tmp_path_factory.mktemp("api-pg-data")
    settings = load_settings(
        data_dir=str(data_dir), database_url=str(postgres_database_url), master_key=MASTER
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/chat/new/message/", b'{"prompt": "hi\\u0000", "max_tokens": 4}', "prompt"),
        ("/admin/keys", b'{"name": "ops\\u0000bot"}', "name"),
        (
            "/v1/async/chat/completions",
            b'{"messages": [{"role": "user", "content": "\\u0000"}]}',
            "messages.0.content",
        ),
    ],
)
def test_a_nul_in_stored_text_is_a_400_on_postgresql(
    pg_client: TestClient, path: str, body: bytes, param: str
) -> None:
    keys_before = pg_client.get("/admin/keys", headers=JSON).json()
    response = pg_client.post(path, content=body, headers=JSON)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert response.json()["error"]["code"] == "invalid_text"
    assert pg_client.get("/admin/keys", headers=JSON).json() == keys_before  # nothing stored


def test_ordinary_text_is_still_stored_and_a_nul_in_a_lookup_is_a_400(pg_client: TestClient) -> None:
    created = pg_client.post("/admin/keys", content=b'{"name": "ops \\\\u0000 bot"}', headers=JSON)
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "ops \\u0000 bot"  # a backslash, then "u0000": no NUL
    lookup = pg_client.get("/chat/get/messages/?conversation_id=a%00b", headers=JSON)
    assert lookup.status_code == 400, lookup.text
