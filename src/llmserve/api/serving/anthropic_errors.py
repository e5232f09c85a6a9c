"""Errors on the Anthropic Messages routes, in Anthropic's shape and with its statuses.

The app's one handler table (``api/errors.py``) decides what an error is (status, wording,
Retry-After, logging); this module only re-says its answer as ``{"type": "error", "error": {"type",
"message"}}``, so the two surfaces cannot drift apart on what failed.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

# Our statuses → Anthropic's (status, error type). Anthropic answers an overloaded service with 529,
# which its SDKs and Claude Code retry as "overloaded"; 502 is not one of its statuses (api_error).
_ERRORS: dict[int, tuple[int, str]] = {
    400: (400, "invalid_request_error"),
    401: (401, "authentication_error"),
    403: (403, "permission_error"),
    404: (404, "not_found_error"),
    405: (405, "invalid_request_error"),
    408: (408, "timeout_error"),
    409: (409, "conflict_error"),
    413: (413, "request_too_large"),
    429: (429, "rate_limit_error"),
    502: (500, "api_error"),
    503: (529, "overloaded_error"),
    504: (504, "timeout_error"),
}


def anthropic_status(status: int) -> tuple[int, str]:
    return _ERRORS.get(status, (500, "api_error") if status >= 500 else (status, "invalid_request_error"))


def error_payload(status: int, message: str, request_id: str | None = None) -> tuple[int, dict[str, Any]]:
    """Anthropic's error body (``{"type": "error", "error": {"type", "message"}}``) and status."""
    status, kind = anthropic_status(status)
    body: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": message}}
    if request_id:
        body["request_id"] = request_id
    return status, body


def reshaped_error(response: Response, request_id: str | None) -> Response:
    """The app's answer to an error (api/errors.py: status, wording, Retry-After, logging), re-said in
    Anthropic's shape. The OpenAI ``code`` stays readable in ``x-llmserve-error-code``."""
    try:
        detail = orjson.loads(bytes(response.body)).get("error") or {}
    except (orjson.JSONDecodeError, AttributeError):
        detail = {}
    status, body = error_payload(response.status_code, str(detail.get("message", "Error")), request_id)
    headers = {k: v for k, v in response.headers.items() if k not in ("content-length", "content-type")}
    if detail.get("code"):
        headers["x-llmserve-error-code"] = str(detail["code"])
    return Response(orjson.dumps(body), status, headers=headers, media_type="application/json")


def stream_error_payload(openai_event: bytes) -> dict[str, Any]:
    """An in-band stream error (``api/errors.stream_error_event``: logged, worded) as Anthropic's
    ``error`` event payload. Its status comes from the error type, as Anthropic's stream carries none."""
    detail = orjson.loads(openai_event.removeprefix(b"data: ")).get("error") or {}
    status = _STATUS_OF_TYPE.get(str(detail.get("type")), 500)
    return error_payload(status, str(detail.get("message", "Error")))[1]


_STATUS_OF_TYPE = {
    "invalid_request_error": 400,
    "rate_limit_error": 429,
    "service_unavailable": 503,
    "authentication_error": 401,
    "permission_error": 403,
}
