"""Input lines in, output lines out: OpenAI's Batch API line formats.

An input line is ``{"custom_id", "method", "url", "body"}``; a shorter ``{"custom_id", "messages"}`` or
``{"custom_id", "prompt"}`` becomes a chat completion. An output line is what OpenAI's batch output file
holds: ``{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}``. A line that
cannot be read is not fatal: it becomes an ``InvalidLine`` that the runner writes as an error line.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

CHAT_URL = "/v1/chat/completions"
# Keys of a short line that are about the line, not the request body.
_LINE_KEYS = frozenset({"custom_id", "method", "url", "body"})


@dataclass(frozen=True)
class BatchRequest:
    custom_id: str
    url: str
    body: dict[str, Any]
    line_no: int
    method: str = "POST"

    def as_input_line(self) -> dict[str, Any]:
        """The full OpenAI form, as uploaded to ``/v1/files``."""
        return {"custom_id": self.custom_id, "method": self.method, "url": self.url, "body": self.body}


@dataclass(frozen=True)
class InvalidLine:
    custom_id: str
    line_no: int
    code: str
    message: str


@dataclass
class ParsedInput:
    requests: list[BatchRequest] = field(default_factory=list)
    invalid: list[InvalidLine] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.requests) + len(self.invalid)


def parse_lines(lines: Iterable[str], model: str | None = None) -> ParsedInput:
    """Reads JSONL text; blank lines are ignored, line numbers are 1-based as an editor shows them."""
    parsed = ParsedInput()
    seen: set[str] = set()
    for line_no, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        item = parse_line(raw, line_no, model)
        if item.custom_id in seen:
            parsed.duplicates.append(item.custom_id)
            continue
        seen.add(item.custom_id)
        if isinstance(item, BatchRequest):
            parsed.requests.append(item)
        else:
            parsed.invalid.append(item)
    return parsed


def parse_line(raw: str, line_no: int, model: str | None = None) -> BatchRequest | InvalidLine:
    fallback_id = f"line-{line_no}"
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return InvalidLine(fallback_id, line_no, "invalid_json", f"line {line_no} is not valid JSON: {exc}")
    if not isinstance(data, dict):
        return InvalidLine(fallback_id, line_no, "invalid_request", f"line {line_no} is not a JSON object")
    custom_id = data.get("custom_id")
    custom_id = fallback_id if custom_id is None or custom_id == "" else str(custom_id)
    try:
        url, method, body = _request_of(data)
    except _Unsendable as exc:
        return InvalidLine(custom_id, line_no, "invalid_request", f"line {line_no}: {exc}")
    if model and "model" not in body:
        body["model"] = model
    return BatchRequest(custom_id, url, body, line_no, method)


class _Unsendable(ValueError):
    """Why a line's request cannot be sent; ``parse_line`` makes it an ``InvalidLine``."""


def _request_of(data: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """(url, method, body) of a line in either form; the body is a copy the caller may add to."""
    if "body" in data:
        return _full_form(data)
    if "messages" in data or "prompt" in data:
        return _short_form(data)
    raise _Unsendable("needs 'body' (OpenAI batch format), 'messages' or 'prompt'")


def _full_form(data: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    body, url = data["body"], data.get("url", CHAT_URL)
    if not isinstance(body, dict):
        raise _Unsendable("'body' must be a JSON object")
    if not isinstance(url, str) or not url.startswith("/"):
        raise _Unsendable("'url' must be a path such as /v1/chat/completions")
    method = str(data.get("method", "POST")).upper()
    if method != "POST":
        raise _Unsendable(f"method {method} is not supported (batch requests are POSTs)")
    return url, method, dict(body)


def _short_form(data: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    # Everything besides the line's own keys (max_tokens, temperature...) belongs to the request.
    body = {key: value for key, value in data.items() if key not in _LINE_KEYS | {"prompt"}}
    if "messages" not in data:
        body["messages"] = [{"role": "user", "content": data["prompt"]}]
    if not isinstance(body["messages"], list):
        raise _Unsendable("'messages' must be a list")
    return CHAT_URL, "POST", body


def _line_id() -> str:
    return f"batch_req_{secrets.token_hex(12)}"


def success_line(custom_id: str, status: int, request_id: str, body: Any) -> dict[str, Any]:
    response = {"status_code": status, "request_id": request_id, "body": body}
    return {"id": _line_id(), "custom_id": custom_id, "response": response, "error": None}


def error_line(
    custom_id: str,
    code: str,
    message: str,
    *,
    status: int | None = None,
    request_id: str = "",
    body: Any = None,
) -> dict[str, Any]:
    """A failed line; ``status`` None means no HTTP answer at all (then ``response`` is null)."""
    response = None
    if status is not None:
        response = {"status_code": status, "request_id": request_id, "body": body}
    error = {"code": code, "message": message}
    return {"id": _line_id(), "custom_id": custom_id, "response": response, "error": error}


def invalid_line_output(item: InvalidLine) -> dict[str, Any]:
    return error_line(item.custom_id, item.code, item.message)


def is_success(line: dict[str, Any]) -> bool:
    response = line.get("response")
    if line.get("error") or not isinstance(response, dict):
        return False
    status = response.get("status_code")
    return isinstance(status, int) and 200 <= status < 300


def encode(line: dict[str, Any]) -> bytes:
    return orjson.dumps(line) + b"\n"


def read_output_lines(text: str) -> Iterator[dict[str, Any]]:
    """The readable lines of an output file; a torn last line (a crash mid-write) is skipped."""
    for raw in text.split("\n"):
        try:
            line = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(line, dict) and isinstance(line.get("custom_id"), str):
            yield line
