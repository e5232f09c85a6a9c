"""Small pure-ASGI middleware: request ids and the request-body size limit."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping

import orjson
from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmserve.errors import error_body
from llmserve.observability.context import received_at_var, request_id_var


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

        try:
            await self.app(scope, receive, send_with_id)
        finally:
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
            await self._reject(send, limit)
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

    async def _reject(self, send: Send, limit: int) -> None:
        body = orjson.dumps(
            error_body(self.message(limit), "invalid_request_error", code="request_too_large")
        )
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class JsonBodyMiddleware:
    """Reads request bodies as JSON unless they are multipart uploads.

    The seed's own client posts ``data=json.dumps(...)`` with no Content-Type, and ``curl -d`` labels
    JSON as a form; FastAPI would reject both. This API takes no forms, so the label is corrected.
    The scope is changed in place, not copied: the router marks the route it took on the scope, and
    the metrics middleware outside reads that mark from the same dict.
    """

    _KEEP = (b"application/json", b"multipart/form-data")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
            if not content_type.lower().startswith(self._KEEP):
                scope["headers"] = [*headers, (b"content-type", b"application/json")]
        await self.app(scope, receive, send)
