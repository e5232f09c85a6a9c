"""Issue 14, files: a download streams from storage in bounded chunks (its memory does not grow with the
file), an upload is read in bounded chunks, and a tenant's storage quota refuses an upload before storing."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient

from llmserve.app import create_app
from llmserve.config import load_settings
from llmserve.jobs.files import CHUNK_BYTES

LINE = b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n'
FILE_BYTES = 6 * CHUNK_BYTES
QUOTA = FILE_BYTES + FILE_BYTES // 2


@pytest.fixture(scope="module")
def files_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data_dir: Path = tmp_path_factory.mktemp("files-stream")
    settings = load_settings(
        data_dir=str(data_dir),
        jobs={"max_file_bytes": FILE_BYTES + CHUNK_BYTES, "max_stored_bytes_per_owner": QUOTA},
    )
    with TestClient(create_app(settings)) as client:
        yield client


def _big_content() -> bytes:
    return (LINE * (FILE_BYTES // len(LINE) + 1))[:FILE_BYTES]


def _upload(client: TestClient, content: bytes, name: str = "big.jsonl") -> Any:
    return client.post("/v1/files", files={"file": (name, content)}, data={"purpose": "batch"})


async def _download_discarding(app: Any, path: str) -> tuple[int, int, int, dict[str, str]]:
    """One in-process download whose body chunks are counted and dropped, as a socket would send them."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(b"host", b"testserver")], "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }  # fmt: skip
    seen = {"status": 0, "total": 0, "largest": 0}
    headers: dict[str, str] = {}

    requested = anyio.Event()

    async def receive() -> dict[str, Any]:
        if not requested.is_set():
            requested.set()
            return {"type": "http.request", "body": b"", "more_body": False}
        await anyio.sleep_forever()  # the client stays connected until the response ends
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            seen["status"] = message["status"]
            headers.update({k.decode(): v.decode() for k, v in message["headers"]})
        elif message["type"] == "http.response.body":
            body = message.get("body", b"")
            seen["total"] += len(body)
            seen["largest"] = max(seen["largest"], len(body))

    await app(scope, receive, send)
    return seen["status"], seen["total"], seen["largest"], headers


def test_a_download_streams_in_bounded_chunks_and_its_memory_does_not_grow_with_the_file(
    files_client: TestClient,
) -> None:
    content = _big_content()
    uploaded = _upload(files_client, content)
    assert uploaded.status_code == 200, uploaded.text
    file_id = uploaded.json()["id"]
    del content
    assert files_client.portal is not None
    tracemalloc.start()
    try:
        status, total, largest, headers = files_client.portal.call(
            _download_discarding, files_client.app, f"/v1/files/{file_id}/content"
        )
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 200
    assert total == FILE_BYTES
    assert headers["content-length"] == str(FILE_BYTES)
    assert largest <= CHUNK_BYTES
    assert peak < 3 * CHUNK_BYTES, f"a {FILE_BYTES}-byte download peaked at {peak} bytes"
    # The bytes are the bytes uploaded, through the ordinary client too.
    response = files_client.get(f"/v1/files/{file_id}/content")
    assert response.content == _big_content()
    assert files_client.delete(f"/v1/files/{file_id}").status_code == 200


def test_an_upload_over_the_quota_is_413_and_stores_nothing(files_client: TestClient) -> None:
    first = _upload(files_client, _big_content(), "first.jsonl")
    assert first.status_code == 200, first.text
    try:
        refused = _upload(files_client, _big_content(), "second.jsonl")
        assert refused.status_code == 413, refused.text
        error = refused.json()["error"]
        assert error["code"] == "storage_quota_exceeded"
        assert str(QUOTA) in error["message"]
        names = [f["filename"] for f in files_client.get("/v1/files").json()["data"]]
        assert names == ["first.jsonl"]
        # Under the quota still fits.
        small = _upload(files_client, LINE, "small.jsonl")
        assert small.status_code == 200, small.text
        assert files_client.delete(f"/v1/files/{small.json()['id']}").status_code == 200
    finally:
        assert files_client.delete(f"/v1/files/{first.json()['id']}").status_code == 200


class _Part:
    """An upload part that records how much each read asked for."""

    def __init__(self, content: bytes) -> None:
        self._content = content
        self.size: int | None = None
        self.asked: list[int] = []

    async def read(self, size: int = -1) -> bytes:
        self.asked.append(size)
        chunk = self._content[: size if size >= 0 else None]
        self._content = self._content[len(chunk) :]
        return chunk


def test_an_upload_is_read_in_bounded_chunks_and_stops_past_the_limit(files_client: TestClient) -> None:
    files = files_client.app.state.services.jobs.files  # type: ignore[attr-defined]
    part = _Part(b"x" * (files.max_bytes + 5 * CHUNK_BYTES))
    assert files_client.portal is not None
    with pytest.raises(Exception, match="larger than the limit"):
        files_client.portal.call(files.read_upload, part)
    assert part.asked and all(0 < size <= CHUNK_BYTES for size in part.asked)
    assert len(part.asked) <= files.max_bytes // CHUNK_BYTES + 1
