"""The Batch API's line formats: reading an input file, writing output and error files.

Input (one JSON object per line): ``{"custom_id", "method": "POST", "url": "/v1/chat/completions",
"body": {...}}``. A line that is not valid fails alone and lands in the error file; the rest of the
batch runs. The body itself is checked when the line runs, by the same endpoint a synchronous call
would reach, so a batch line fails with exactly the 400 the live API would give.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from llmserve.storage.models import CUSTOM_ID_LENGTH, JobRow

BATCH_ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")


@dataclass(frozen=True)
class InputLine:
    line: int  # 1-based line number in the file
    custom_id: str | None
    body: dict[str, Any] | None
    error: dict[str, str] | None  # set when the line is invalid; it will not run


class BatchFileError(ValueError):
    """The file as a whole cannot be a batch (not UTF-8, no lines, too many lines)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def parse_input(content: bytes, endpoint: str, max_lines: int) -> list[InputLine]:
    try:
        text = content.decode("utf-8-sig")  # a leading byte-order mark is not part of line 1
    except UnicodeDecodeError as exc:
        raise BatchFileError(f"The input file is not UTF-8 text: {exc}", "invalid_file") from exc
    # Lines end at "\n" (or "\r\n") only: str.splitlines() would also split at U+2028, U+2029 and
    # U+0085, which JSON allows unescaped inside strings (orjson and JSON.stringify write them so).
    raw_lines = (raw.removesuffix("\r") for raw in text.split("\n"))
    lines = [(number, raw) for number, raw in enumerate(raw_lines, start=1) if raw.strip()]
    if not lines:
        raise BatchFileError("The input file has no request lines", "empty_file")
    if len(lines) > max_lines:
        raise BatchFileError(
            f"The input file has {len(lines)} lines; this server takes at most {max_lines} per batch",
            "too_many_lines",
        )
    seen: set[str] = set()
    parsed = []
    for number, raw in lines:
        line = _parse_line(number, raw, endpoint)
        custom_id = line.custom_id
        if custom_id is not None and line.error is None:
            if custom_id in seen:
                detail = f"custom_id {custom_id!r} appears more than once"
                line = InputLine(number, None, None, _error("duplicate_custom_id", detail, number, custom_id))
            else:
                seen.add(custom_id)
        parsed.append(line)
    return parsed


def _error(code: str, detail: str, line: int, custom_id: str | None = None) -> dict[str, str]:
    error = {"code": code, "message": f"Line {line}: {detail}", "line": str(line)}
    if custom_id is not None:
        error["custom_id"] = custom_id
    return error


def _parse_line(number: int, raw: str, endpoint: str) -> InputLine:
    try:
        item = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return InputLine(number, None, None, _error("invalid_json", f"not valid JSON ({exc})", number))
    if not isinstance(item, dict):
        return InputLine(
            number, None, None, _error("invalid_request", "a line must be a JSON object", number)
        )
    custom_id = item.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id or len(custom_id) > CUSTOM_ID_LENGTH:
        detail = f"custom_id must be a non-empty string of at most {CUSTOM_ID_LENGTH} characters"
        return InputLine(number, None, None, _error("invalid_custom_id", detail, number))
    method = item.get("method", "POST")
    if not isinstance(method, str) or method.upper() != "POST":
        return _invalid(number, custom_id, "invalid_method", f"method must be POST, not {method!r}")
    url = item.get("url")
    if url != endpoint:
        detail = f"url {url!r} does not match the batch's endpoint {endpoint!r}"
        return _invalid(number, custom_id, "mismatched_url", detail)
    body = item.get("body")
    if not isinstance(body, dict):
        return _invalid(number, custom_id, "invalid_body", "body must be a JSON object")
    if body.get("stream"):
        return _invalid(number, custom_id, "invalid_body", "stream is not supported in a batch")
    return InputLine(number, custom_id, body, None)


def _invalid(number: int, custom_id: str, code: str, detail: str) -> InputLine:
    # The custom_id is kept in the error (for the error file) but not on the row, so that an invalid
    # line never takes the unique (batch, custom_id) slot from a valid one.
    return InputLine(number, None, None, _error(code, detail, number, custom_id))


def line_custom_id(row: JobRow) -> str | None:
    if row.custom_id is not None:
        return row.custom_id
    return (row.error or {}).get("custom_id")


def output_line(row: JobRow) -> dict[str, Any]:
    """OpenAI's output/error line: ``{id, custom_id, response: {status_code, request_id, body}, error}``."""
    response = None
    if row.response_status is not None:
        response = {
            "status_code": row.response_status,
            "request_id": row.request_id or "",
            "body": row.response_body,
        }
    error = None
    if not succeeded(row):
        error = _line_error(row)
    return {"id": row.id, "custom_id": line_custom_id(row), "response": response, "error": error}


def _line_error(row: JobRow) -> dict[str, Any]:
    if row.error:
        return {"code": row.error.get("code", "error"), "message": row.error.get("message", "")}
    body: dict[str, Any] = row.response_body if isinstance(row.response_body, dict) else {}
    found = body.get("error")
    detail: dict[str, Any] = found if isinstance(found, dict) else {}
    return {
        "code": detail.get("code") or detail.get("type") or f"http_{row.response_status}",
        "message": detail.get("message") or f"The request failed with status {row.response_status}",
    }


def succeeded(row: JobRow) -> bool:
    return row.status == "completed" and row.response_status is not None and 200 <= row.response_status < 300


def jsonl(items: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(_lines(items))


def _lines(items: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    for item in items:
        yield orjson.dumps(item) + b"\n"
