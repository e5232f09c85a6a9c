"""Issue 14, files: any filename comes back in a valid RFC 6266/5987 Content-Disposition; a filename with
control characters is refused before it is stored."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote

import pytest
from fastapi.testclient import TestClient

from llmserve.api.routes.files import content_disposition

if TYPE_CHECKING:
    from httpx2 import Response  # what starlette's TestClient answers with
from tests.api.test_auth import assert_error

LINE = b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n'


def _upload(client: TestClient, filename: str) -> Response:
    """A multipart upload built by hand: httpx would percent-encode quotes and control characters."""
    boundary = "llmserve-test-boundary"
    quoted = filename.replace('"', '\\"')
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{quoted}"'
            "\r\nContent-Type: application/jsonl\r\n\r\n"
        ).encode()
        + LINE
        + f"\r\n--{boundary}--\r\n".encode()
    )
    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    return client.post("/v1/files", content=body, headers=headers)


@pytest.mark.parametrize("filename", ["报告.jsonl", 'say "hi".jsonl', "résumé \\ 2.jsonl", "plain.jsonl"])
def test_any_filename_comes_back_in_a_valid_content_disposition(client: TestClient, filename: str) -> None:
    uploaded = _upload(client, filename)
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json()["filename"] == filename
    file_id = uploaded.json()["id"]
    response = client.get(f"/v1/files/{file_id}/content")
    assert response.status_code == 200, response.text
    assert response.content == LINE
    disposition = response.headers["content-disposition"]
    disposition.encode("ascii")  # a header value the ASGI server can send
    fallback, extended = disposition.removeprefix('attachment; filename="').split("\"; filename*=UTF-8''")
    assert '"' not in fallback and "\\" not in fallback and fallback.isascii()
    assert unquote(extended) == filename


def test_the_header_of_a_plain_name() -> None:
    assert (
        content_disposition("out.jsonl") == "attachment; filename=\"out.jsonl\"; filename*=UTF-8''out.jsonl"
    )
    assert content_disposition('a"b') == "attachment; filename=\"a_b\"; filename*=UTF-8''a%22b"


@pytest.mark.parametrize("filename", ["a\x00b.jsonl", "a\x01.jsonl", "del\x7f.jsonl", "c1\x85.jsonl"])
def test_a_filename_with_control_characters_is_refused_before_it_is_stored(
    client: TestClient, filename: str
) -> None:
    before = client.get("/v1/files").json()["data"]
    response = _upload(client, filename)
    assert_error(response, 400, "invalid_request_error", "invalid_filename")
    assert client.get("/v1/files").json()["data"] == before
