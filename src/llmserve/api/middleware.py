"""Small pure-ASGI middleware: request ids, the request-body size limit, and JSON bodies."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmserve.api.errors import BodyRejected
from llmserve.errors import error_body
from llmserve.observability.context import Cleanup, received_at_var, request_cleanups_var, request_id_var

logger = logging.getLogger(__name__)

# JSON escapes of text no route can keep: NUL (PostgreSQL's text columns refuse it) and the UTF-16
# surrogate range (text only in pairs; a lone one is not Unicode and cannot be encoded as UTF-8).
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")


class RequestIdMiddleware:
    """Takes ``x-request-id`` from the client (or makes one), echoes it, and exposes it to logging."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        received = received_at_var.set(time.perf_counter())
        supplied = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")[:128]
        request_id = supplied or uuid.uuid4().hex
        token = request_id_var.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode("latin-1"))]
            await send(message)

        cleanups: list[Cleanup] = []
        registered = request_cleanups_var.set(cleanups)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            for cleanup in cleanups:
                try:
                    await cleanup()
                except Exception:  # one cleanup's failure must not skip the others
                    logger.exception("cleanup after request %s failed", request_id)
            request_cleanups_var.reset(registered)
            request_id_var.reset(token)
            received_at_var.reset(received)


class BodySizeLimitMiddleware:
    """413 for bodies over the limit, checked on Content-Length and again while the body streams in
    (chunked uploads declare no length)."""

    def __init__(
        self, app: ASGIApp, max_body_bytes: int, path_limits: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # Uploads (POST /v1/files) take far larger bodies than a chat request may.
        self.path_limits = dict(path_limits or {})

    @staticmethod
    def message(limit: int) -> str:
        return f"Request body is larger than the limit of {limit} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.path_limits.get(scope["path"], self.max_body_bytes)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reject(send, limit, scope["path"])
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # FastAPI re-raises HTTPException from body parsing; api/errors.py renders it.
                    raise HTTPException(status_code=413, detail=self.message(limit))
            return message

        await self.app(scope, limited_receive, send)

    async def _reject(self, send: Send, limit: int, path: str) -> None:
        payload = error_body(self.message(limit), "invalid_request_error", code="request_too_large")
        if path.startswith("/v1/messages"):  # Anthropic's clients read Anthropic's error shape there
            payload = {
                "type": "error",
                "error": {"type": "request_too_large", "message": self.message(limit)},
            }
        await _send_error(send, 413, payload)


class JsonBodyMiddleware:
    """Reads request bodies as JSON unless they are multipart uploads, and refuses text no route
    can keep (a NUL character, a lone surrogate) with a 400 before any route acts on it.

    The seed's own client posts ``data=json.dumps(...)`` with no Content-Type, and ``curl -d`` labels
    JSON as a form; FastAPI would reject both. This API takes no forms, so the label is corrected.
    The scope is changed in place, not copied: the router marks the route it took on the scope, and
    the metrics middleware outside reads that mark from the same dict.
    """

    _MULTIPART = b"multipart/form-data"

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if b"%00" in scope["query_string"] or "\x00" in scope["path"]:
            message = "The URL may not contain a NUL character (%00)"
            await _send_error(send, 400, error_body(message, "invalid_request_error", code="invalid_text"))
            return
        if scope["method"] in ("POST", "PUT", "PATCH"):
            content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
            if not content_type.lower().startswith(self._MULTIPART):
                receive = _text_checked(receive)
                if not content_type.lower().startswith(b"application/json"):
                    headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
                    scope["headers"] = [*headers, (b"content-type", b"application/json")]
        await self.app(scope, receive, send)


def _text_checked(receive: Receive) -> Receive:
    """``receive`` that checks the whole body once its last chunk is in (an escape may straddle two)."""
    chunks: list[bytes] = []

    async def checked_receive() -> Message:
        message = await receive()
        if message["type"] == "http.request":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                refuse_unstorable_text(chunks[0] if len(chunks) == 1 else b"".join(chunks))
                chunks.clear()
        return message

    return checked_receive


def refuse_unstorable_text(body: bytes) -> None:
    """400 (``BodyRejected``) for a JSON body with a NUL character or a lone surrogate in a string.

    A body without such an escape costs one C-speed scan; only a suspect one is parsed and walked,
    to name the field. A body that is not JSON passes: the route's parser words that error.
    """
    if b"\\u" not in body or not _SUSPECT_ESCAPE.search(body):
        return
    try:
        found = _unstorable(json.loads(body), ())
    except ValueError:  # not JSON (json.JSONDecodeError, UnicodeDecodeError)
        return
    except RecursionError:
        found = (None, "a NUL character or a lone surrogate")
    if found is not None:
        param, problem = found
        message = f"Text may not contain {problem}"
        message = f"Invalid value for '{param}': {message}" if param else message
        raise BodyRejected(message, param=param, code="invalid_text")


def _unstorable(value: Any, path: tuple[str, ...]) -> tuple[str | None, str] | None:
    if isinstance(value, str):
        problem = _text_problem(value)
        return (".".join(path) or None, problem) if problem else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        problem = _text_problem(key) if isinstance(key, str) else None
        found = (".".join((*path, str(key))), problem) if problem else _unstorable(item, (*path, str(key)))
        if found is not None:
            return found
    return None


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "a NUL character (\\u0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "a lone UTF-16 surrogate (it is not valid Unicode)"
    return None


async def _send_error(send: Send, status: int, payload: dict[str, Any]) -> None:
    body = orjson.dumps(payload)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
