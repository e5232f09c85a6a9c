"""The Files and Batches APIs in process: uploads, batch lifecycle, line errors, paging, tenants.

The app here has its own data dir and a fast-polling job worker, so batches really run (on the
bundled model, or on a loopback OpenAI-compatible upstream) without disturbing the tier's shared
app. Each test talks as its own tenant (auth is off, so a bearer token is a tenant) to see only
what it made.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from fastapi.testclient import TestClient

from llmserve.app import create_app
from llmserve.config import load_settings
from tests.api.conftest import shape
from tests.upstreams.openai_app import openai_server
from tests.upstreams.server import UpstreamServer

if TYPE_CHECKING:
    from httpx2 import Response  # what starlette's TestClient answers with

MAX_FILE_BYTES = 32 * 1024
CHAT = "/v1/chat/completions"
TERMINAL = ("completed", "failed", "cancelled", "expired")
MASTER = "master-key-for-batch-tests-0123456789"


@pytest.fixture(scope="module")
def jobs_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data_dir: Path = tmp_path_factory.mktemp("batches-api")
    settings = load_settings(
        data_dir=str(data_dir),
        jobs={"poll_interval_seconds": 0.05, "max_file_bytes": MAX_FILE_BYTES},
    )
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def tenant() -> dict[str, str]:
    """A fresh tenant for one test: with auth off, each bearer token is its own tenant."""
    return {"authorization": f"Bearer tenant-{uuid.uuid4().hex}"}


def chat_line(custom_id: str, text: str, url: str = CHAT, **body: Any) -> dict[str, Any]:
    payload = {"messages": [{"role": "user", "content": text}], "max_tokens": 3, "temperature": 0, **body}
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": payload}


def jsonl(lines: list[dict[str, Any] | str]) -> bytes:
    return "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines).encode()


def upload(client: TestClient, headers: dict[str, str], content: bytes, purpose: str = "batch") -> Response:
    return client.post(
        "/v1/files",
        files={"file": ("requests.jsonl", content, "application/jsonl")},
        data={"purpose": purpose},
        headers=headers,
    )


def uploaded_id(client: TestClient, headers: dict[str, str], content: bytes) -> str:
    response = upload(client, headers, content)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def create_batch(client: TestClient, headers: dict[str, str], file_id: str, **extra: Any) -> Response:
    body = {"input_file_id": file_id, "endpoint": CHAT, "completion_window": "24h", **extra}
    return client.post("/v1/batches", json=body, headers=headers)


def submit(client: TestClient, headers: dict[str, str], lines: list[dict[str, Any] | str]) -> str:
    response = create_batch(client, headers, uploaded_id(client, headers, jsonl(lines)))
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "validating"
    return str(response.json()["id"])


def wait_done(
    client: TestClient, headers: dict[str, str], batch_id: str, timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    batch: dict[str, Any] = {}
    while time.monotonic() < deadline:
        batch = client.get(f"/v1/batches/{batch_id}", headers=headers).json()
        if batch["status"] in TERMINAL:
            return batch
        time.sleep(0.05)
    pytest.fail(f"batch not finished after {timeout:.0f}s: {batch}")


def file_lines(client: TestClient, headers: dict[str, str], file_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/files/{file_id}/content", headers=headers)
    assert response.status_code == 200, response.text
    return [json.loads(line) for line in response.text.splitlines()]


def assert_error(response: Response, status: int, code: str | None = None, param: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"]
    if code is not None:
        assert error["code"] == code, error
    if param is not None:
        assert error["param"] == param, error


# --- files --------------------------------------------------------------------------------------


def test_file_upload_list_get_content_delete_round_trip(
    jobs_client: TestClient, tenant: dict[str, str]
) -> None:
    content = jsonl([chat_line("a", "hello"), chat_line("b", "héllo wörld")])
    created = upload(jobs_client, tenant, content)
    assert created.status_code == 200, created.text
    info = created.json()
    assert info["object"] == "file" and info["id"].startswith("file-")
    assert info["purpose"] == "batch" and info["filename"] == "requests.jsonl"
    assert info["bytes"] == len(content) and info["created_at"] > 0

    listed = jobs_client.get("/v1/files", headers=tenant).json()
    assert listed["object"] == "list" and [entry["id"] for entry in listed["data"]] == [info["id"]]
    assert jobs_client.get(f"/v1/files/{info['id']}", headers=tenant).json() == info
    assert (
        jobs_client.get("/v1/files", params={"purpose": "batch_output"}, headers=tenant).json()["data"] == []
    )

    downloaded = jobs_client.get(f"/v1/files/{info['id']}/content", headers=tenant)
    assert downloaded.status_code == 200
    assert downloaded.content == content, "the file comes back byte for byte"

    deleted = jobs_client.delete(f"/v1/files/{info['id']}", headers=tenant)
    assert deleted.status_code == 200
    assert deleted.json() == {"id": info["id"], "object": "file", "deleted": True}
    assert_error(jobs_client.get(f"/v1/files/{info['id']}", headers=tenant), 404, "file_not_found")
    assert_error(jobs_client.get(f"/v1/files/{info['id']}/content", headers=tenant), 404, "file_not_found")
    assert_error(jobs_client.delete(f"/v1/files/{info['id']}", headers=tenant), 404, "file_not_found")
    assert jobs_client.get("/v1/files", headers=tenant).json()["data"] == []


@pytest.mark.parametrize("purpose", ["fine-tune", "assistants", "batch_output", ""])
def test_upload_with_another_purpose_is_400(
    jobs_client: TestClient, tenant: dict[str, str], purpose: str
) -> None:
    response = upload(jobs_client, tenant, jsonl([chat_line("a", "hi")]), purpose=purpose)
    assert_error(response, 400, param="purpose")
    assert jobs_client.get("/v1/files", headers=tenant).json()["data"] == []


def test_upload_over_the_size_limit_is_refused_and_not_stored(
    jobs_client: TestClient, tenant: dict[str, str]
) -> None:
    line = json.dumps(chat_line("x", "y" * 200)) + "\n"
    content = (line * (MAX_FILE_BYTES // len(line) + 1)).encode()
    assert len(content) > MAX_FILE_BYTES
    response = upload(jobs_client, tenant, content)
    assert_error(response, 400, param="file")
    assert str(MAX_FILE_BYTES) in response.json()["error"]["message"]
    assert jobs_client.get("/v1/files", headers=tenant).json()["data"] == []
    # Right at the limit is fine.
    assert upload(jobs_client, tenant, content[:MAX_FILE_BYTES]).status_code == 200


def test_an_empty_upload_or_no_file_is_400(jobs_client: TestClient, tenant: dict[str, str]) -> None:
    assert_error(upload(jobs_client, tenant, b""), 400, "empty_file")
    assert_error(jobs_client.post("/v1/files", data={"purpose": "batch"}, headers=tenant), 400, param="file")
    assert jobs_client.get("/v1/files", headers=tenant).json()["data"] == []


# --- creating batches ---------------------------------------------------------------------------


def test_batch_on_a_missing_file_is_404(jobs_client: TestClient, tenant: dict[str, str]) -> None:
    response = create_batch(jobs_client, tenant, "file-doesnotexist")
    assert_error(response, 404, "file_not_found", "input_file_id")
    assert jobs_client.get("/v1/batches", headers=tenant).json()["data"] == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("endpoint", "/v1/images/generations"),
        ("endpoint", "/v1/chat/completions/"),
        ("completion_window", "1w"),
        ("completion_window", "0h"),
        ("completion_window", "999h"),
        ("completion_window", ""),
    ],
)
def test_bad_endpoint_or_completion_window_is_400(
    jobs_client: TestClient, tenant: dict[str, str], field: str, value: str
) -> None:
    file_id = uploaded_id(jobs_client, tenant, jsonl([chat_line("a", "hi")]))
    response = create_batch(jobs_client, tenant, file_id, **{field: value})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == field
    assert jobs_client.get("/v1/batches", headers=tenant).json()["data"] == []


def test_mixed_batch_runs_the_good_lines_and_reports_each_bad_one(
    jobs_client: TestClient, tenant: dict[str, str]
) -> None:
    lines: list[dict[str, Any] | str] = [
        chat_line("good-1", "one"),
        "this line is not json {",
        chat_line("good-2", "two"),
        {**chat_line("bad-body", "x"), "body": {"messages": []}},
        chat_line("good-1", "the same custom_id again"),
        chat_line("wrong-url", "three", url="/v1/embeddings"),
        chat_line("good-3", "three"),
    ]
    batch = wait_done(jobs_client, tenant, submit(jobs_client, tenant, lines))

    assert batch["status"] == "completed", batch
    assert batch["request_counts"] == {"total": 7, "completed": 3, "failed": 4}
    assert batch["output_file_id"] and batch["error_file_id"]
    assert batch["in_progress_at"] and batch["finalizing_at"] and batch["completed_at"]

    output = file_lines(jobs_client, tenant, batch["output_file_id"])
    assert Counter(line["custom_id"] for line in output) == {"good-1": 1, "good-2": 1, "good-3": 1}
    sync = jobs_client.post(CHAT, json=chat_line("sync", "one")["body"], headers=tenant)
    assert sync.status_code == 200, sync.text
    for line in output:
        assert line["error"] is None and line["id"].startswith("batch_req_")
        response = line["response"]
        assert response["status_code"] == 200 and response["request_id"]
        assert response["body"]["object"] == "chat.completion"
        assert response["body"]["choices"][0]["message"]["content"]
        assert shape(response["body"]) == shape(sync.json()), "a batch answer is the sync endpoint's body"

    errors = {
        (line["custom_id"], line["error"]["code"])
        for line in file_lines(jobs_client, tenant, batch["error_file_id"])
    }
    assert errors == {
        (None, "invalid_json"),
        ("bad-body", "invalid_request_error"),
        ("good-1", "duplicate_custom_id"),
        ("wrong-url", "mismatched_url"),
    }
    by_id = {line["custom_id"]: line for line in file_lines(jobs_client, tenant, batch["error_file_id"])}
    # The bad body ran and failed exactly as the live endpoint fails it: a 400 with OpenAI's error.
    assert by_id["bad-body"]["response"]["status_code"] == 400
    assert by_id["bad-body"]["response"]["body"]["error"]["param"] == "messages"
    assert (
        by_id["wrong-url"]["response"] is None and "/v1/embeddings" in by_id["wrong-url"]["error"]["message"]
    )


def test_lines_split_only_at_newlines_so_unicode_line_separators_in_text_survive(
    jobs_client: TestClient, tenant: dict[str, str]
) -> None:
    # Written as orjson, JavaScript's JSON.stringify or json.dumps(ensure_ascii=False) write them:
    # U+2028 / U+2029 / U+0085 unescaped inside strings, which JSON allows. Windows line endings
    # and a byte-order mark, as editors on Windows save, are fine too.
    texts = {"ls": "para one\u2028para two", "ps": "end\u2029start", "nel": "next\x85line"}
    lines = [json.dumps(chat_line(custom_id, text), ensure_ascii=False) for custom_id, text in texts.items()]
    content = b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n"
    response = create_batch(jobs_client, tenant, uploaded_id(jobs_client, tenant, content))
    assert response.status_code == 200, response.text
    batch = wait_done(jobs_client, tenant, response.json()["id"])
    assert batch["status"] == "completed", batch
    assert batch["request_counts"] == {"total": 3, "completed": 3, "failed": 0}, batch
    output = file_lines(jobs_client, tenant, batch["output_file_id"])
    assert sorted(line["custom_id"] for line in output) == sorted(texts)


def test_an_input_file_that_is_not_utf8_fails_the_batch(
    jobs_client: TestClient, tenant: dict[str, str]
) -> None:
    content = jsonl([chat_line("a", "hi")]) + b'{"custom_id": "b\xff\xfe"}\n'
    response = create_batch(jobs_client, tenant, uploaded_id(jobs_client, tenant, content))
    assert response.status_code == 200, response.text
    batch = wait_done(jobs_client, tenant, response.json()["id"])
    assert batch["status"] == "failed" and batch["failed_at"]
    assert batch["output_file_id"] is None and batch["error_file_id"] is None
    [error] = batch["errors"]["data"]
    assert error["code"] == "invalid_file" and "UTF-8" in error["message"]
    assert batch["request_counts"] == {"total": 0, "completed": 0, "failed": 0}


def test_a_batch_of_only_bad_lines_completes_with_just_an_error_file(
    jobs_client: TestClient, tenant: dict[str, str]
) -> None:
    batch = wait_done(jobs_client, tenant, submit(jobs_client, tenant, ["nope", "[1, 2]"]))
    assert batch["status"] == "completed", batch
    assert batch["request_counts"] == {"total": 2, "completed": 0, "failed": 2}
    assert batch["output_file_id"] is None
    codes = [line["error"]["code"] for line in file_lines(jobs_client, tenant, batch["error_file_id"])]
    assert codes == ["invalid_json", "invalid_request"]


def test_a_batch_on_an_output_file_is_400(jobs_client: TestClient, tenant: dict[str, str]) -> None:
    batch = wait_done(jobs_client, tenant, submit(jobs_client, tenant, ["not json"]))
    response = create_batch(jobs_client, tenant, batch["error_file_id"])
    assert_error(response, 400, param="input_file_id")


# --- listing and cancelling ---------------------------------------------------------------------


def test_batches_list_pages_newest_first(jobs_client: TestClient, tenant: dict[str, str]) -> None:
    made = [submit(jobs_client, tenant, [f"bad line {i}"]) for i in range(3)]
    newest_first = list(reversed(made))

    first = jobs_client.get("/v1/batches", params={"limit": 2}, headers=tenant)
    assert first.status_code == 200, first.text
    page = first.json()
    assert page["object"] == "list" and page["has_more"] is True
    assert [b["id"] for b in page["data"]] == newest_first[:2]
    assert page["first_id"] == newest_first[0] and page["last_id"] == newest_first[1]

    second = jobs_client.get(
        "/v1/batches", params={"limit": 2, "after": page["last_id"]}, headers=tenant
    ).json()
    assert [b["id"] for b in second["data"]] == newest_first[2:]
    assert second["has_more"] is False and second["first_id"] == second["last_id"] == newest_first[2]

    everything = jobs_client.get("/v1/batches", headers=tenant).json()
    assert [b["id"] for b in everything["data"]] == newest_first and everything["has_more"] is False
    assert_error(jobs_client.get("/v1/batches", params={"limit": 0}, headers=tenant), 400, param="limit")


def test_cancelling_a_finished_batch_is_409(jobs_client: TestClient, tenant: dict[str, str]) -> None:
    batch = wait_done(jobs_client, tenant, submit(jobs_client, tenant, ["not json"]))
    response = jobs_client.post(f"/v1/batches/{batch['id']}/cancel", headers=tenant)
    assert_error(response, 409)
    assert "completed" in response.json()["error"]["message"]
    assert jobs_client.get(f"/v1/batches/{batch['id']}", headers=tenant).json()["status"] == "completed"
    assert_error(jobs_client.post("/v1/batches/batch_nope/cancel", headers=tenant), 404, "batch_not_found")
    assert_error(jobs_client.get("/v1/batches/batch_nope", headers=tenant), 404, "batch_not_found")


# --- tenants ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    with openai_server("tenants") as server:
        yield server


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, upstream: UpstreamServer) -> Iterator[TestClient]:
    settings = load_settings(
        data_dir=str(tmp_path_factory.mktemp("batches-tenants")),
        master_key=MASTER,
        models=[
            {"name": "remote", "provider": "openai", "model": "gpt-test", "api_base": f"{upstream.url}/v1"}
        ],
        jobs={"poll_interval_seconds": 0.05},
    )
    with TestClient(create_app(settings)) as client:
        yield client


def user_key(client: TestClient) -> dict[str, str]:
    created = client.post("/admin/keys", json={"role": "user"}, headers={"authorization": f"Bearer {MASTER}"})
    assert created.status_code == 201, created.text
    return {"authorization": f"Bearer {created.json()['key']}"}


def test_another_tenant_sees_none_of_a_tenants_files_batches_or_jobs(secured: TestClient) -> None:
    alice, bob = user_key(secured), user_key(secured)
    line = chat_line("a-1", "for alice only", model="remote", max_tokens=16)
    file_id = uploaded_id(secured, alice, jsonl([line]))
    batch = wait_done(secured, alice, submit(secured, alice, [line]))
    assert batch["status"] == "completed" and batch["output_file_id"], batch
    job = secured.post("/v1/async/chat/completions", json=line["body"], headers=alice)
    assert job.status_code == 202, job.text
    job_id = job.json()["id"]

    # Alice sees her own things.
    assert secured.get(f"/v1/files/{file_id}", headers=alice).status_code == 200
    assert secured.get(f"/v1/batches/{batch['id']}", headers=alice).status_code == 200
    assert secured.get(f"/v1/jobs/{job_id}", headers=alice).status_code == 200
    output = file_lines(secured, alice, batch["output_file_id"])
    assert (
        output[0]["response"]["body"]["choices"][0]["message"]["content"] == "[tenants] echo: for alice only"
    )

    # Bob gets 404 for each, exactly as for an id that does not exist, and changes nothing.
    for path in (
        f"/v1/files/{file_id}",
        f"/v1/files/{file_id}/content",
        f"/v1/files/{batch['output_file_id']}/content",
        f"/v1/batches/{batch['id']}",
        f"/v1/jobs/{job_id}",
    ):
        assert_error(secured.get(path, headers=bob), 404)
    assert_error(secured.delete(f"/v1/files/{file_id}", headers=bob), 404, "file_not_found")
    assert_error(secured.delete(f"/v1/jobs/{job_id}", headers=bob), 404, "job_not_found")
    assert_error(secured.post(f"/v1/batches/{batch['id']}/cancel", headers=bob), 404, "batch_not_found")
    assert_error(create_batch(secured, bob, file_id), 404, "file_not_found")
    assert secured.get("/v1/files", headers=bob).json()["data"] == []
    assert secured.get("/v1/batches", headers=bob).json()["data"] == []

    assert secured.get(f"/v1/files/{file_id}", headers=alice).status_code == 200
    assert secured.get(f"/v1/jobs/{job_id}", headers=alice).json()["status"] != "cancelled"
    assert {f["id"] for f in secured.get("/v1/files", headers=alice).json()["data"]} >= {file_id}
    # Without a key there is no tenant at all.
    assert secured.get("/v1/files").status_code == 401
    assert secured.get(f"/v1/batches/{batch['id']}").status_code == 401
