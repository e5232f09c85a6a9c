"""OpenAI's Files + Batches API, small and by hand, for ``llmserve batch run --via-batch-api`` tests.

It plays the protocol the CLI speaks (upload, create, poll, download, cancel) on a real loopback
``UpstreamServer``, so fault injection works on it too. Each line is answered by ``OpenAIUpstream``:
2xx answers go to the output file, the others to the error file, as OpenAI splits them. A batch is
``in_progress`` at its first poll and ``completed`` at the next, so the CLI has to poll.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import orjson

from tests.upstreams.openai_app import OpenAIUpstream, error_body
from tests.upstreams.server import Reply, UpstreamRequest


def multipart_fields(request: UpstreamRequest) -> dict[str, bytes]:
    """The fields of a multipart/form-data body, by name (enough for purpose + file)."""
    boundary = request.headers["content-type"].split("boundary=", 1)[1].strip('"').encode()
    fields: dict[str, bytes] = {}
    for part in request.body.split(b"--" + boundary)[1:-1]:
        head, _, content = part.strip(b"\r\n").partition(b"\r\n\r\n")
        name = head.split(b'name="', 1)[1].split(b'"', 1)[0].decode()
        fields[name] = content
    return fields


@dataclass
class FakeBatch:
    id: str
    endpoint: str
    lines: list[dict[str, Any]]
    status: str = "validating"
    output_file_id: str | None = None
    error_file_id: str | None = None
    completed: int = 0
    failed: int = 0

    def state(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "status": self.status,
            "completion_window": "24h",
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "request_counts": {"total": len(self.lines), "completed": self.completed, "failed": self.failed},
        }


@dataclass
class FakeBatchApi:
    upstream: OpenAIUpstream = field(default_factory=lambda: OpenAIUpstream(model="gpt-4o-mini"))
    files: dict[str, bytes] = field(default_factory=dict)
    batches: dict[str, FakeBatch] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def __call__(self, request: UpstreamRequest) -> Reply:
        path, method = request.path, request.method
        if method == "POST" and path == "/v1/files":
            fields = multipart_fields(request)
            if fields.get("purpose") != b"batch":
                return Reply(400, error_body("purpose must be batch", "invalid_request_error", None))
            return Reply(200, {"id": self._store(fields["file"]), "object": "file", "purpose": "batch"})
        if method == "GET" and path.startswith("/v1/files/") and path.endswith("/content"):
            return Reply(200, self.files[path.split("/")[3]])
        if method == "POST" and path == "/v1/batches":
            spec = request.json()
            lines = [orjson.loads(raw) for raw in self.files[spec["input_file_id"]].splitlines()]
            batch = FakeBatch(f"batch_{next(self._ids)}", spec["endpoint"], lines)
            self.batches[batch.id] = batch
            return Reply(200, batch.state())
        if path.startswith("/v1/batches/"):
            batch = self.batches[path.split("/")[3]]
            if method == "POST" and path.endswith("/cancel"):
                batch.status = "cancelled"
            elif batch.status == "validating":
                batch.status = "in_progress"
            elif batch.status == "in_progress":
                self._run(batch)
            return Reply(200, batch.state())
        return Reply(404, error_body(f"no route {method} {path}", "invalid_request_error", None))

    def _store(self, content: bytes) -> str:
        file_id = f"file-{next(self._ids)}"
        self.files[file_id] = content
        return file_id

    def _run(self, batch: FakeBatch) -> None:
        output: list[bytes] = []
        errors: list[bytes] = []
        for index, line in enumerate(batch.lines):
            answer = self.upstream(UpstreamRequest("POST", line["url"], {}, orjson.dumps(line["body"])))
            assert isinstance(answer, Reply)
            response = {"status_code": answer.status, "request_id": f"req_{index}", "body": answer.body}
            ok = answer.status < 300
            error = None if ok else {"code": "request_failed", "message": str(answer.body)}
            row = {"id": f"batch_req_{index}", "custom_id": line["custom_id"], "response": response}
            (output if ok else errors).append(orjson.dumps({**row, "error": error}))
        batch.completed, batch.failed = len(output), len(errors)
        batch.output_file_id = self._store(b"\n".join(output) + b"\n") if output else None
        batch.error_file_id = self._store(b"\n".join(errors) + b"\n") if errors else None
        batch.status = "completed"
