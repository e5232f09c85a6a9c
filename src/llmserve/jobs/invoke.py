"""Runs a queued request through the app itself, in process, as its owner.

A batch line or an async job must answer exactly what the synchronous endpoint would: same
validation, same 400s, same body, same pipeline (auth scopes, limits, budgets, guardrails, cache,
ledger, metrics). Calling the ASGI app directly gives that for free, without a socket and without
a second code path to keep in step. Who the request runs as travels in the ASGI scope, which only
server code can set: an HTTP client can never put a key there.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.types import ASGIApp, Message

from llmserve.principal import INTERNAL_PRINCIPAL_SCOPE_KEY, PRIORITY_FLOOR_SCOPE_KEY, Principal
from llmserve.retry_timing import parse_retry_after

INTERNAL_HOST = "llmserve-jobs"


@dataclass(frozen=True)
class Invocation:
    status: int
    body: Any  # the parsed JSON body (or the text, where the answer was not JSON)
    request_id: str
    retry_after: float | None


class AppInvoker:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def post(
        self, path: str, body: dict[str, Any], principal: Principal, priority_floor: int, request_id: str
    ) -> Invocation:
        payload = orjson.dumps(body)
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", INTERNAL_HOST.encode()),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"x-request-id", request_id.encode()),
            ],
            "client": ("127.0.0.1", 0),
            "server": (INTERNAL_HOST, 80),
            "state": {},
            INTERNAL_PRINCIPAL_SCOPE_KEY: principal,
            PRIORITY_FLOOR_SCOPE_KEY: priority_floor,
        }
        done = asyncio.Event()
        sent_body = False
        status = 500
        headers: dict[str, str] = {}
        chunks: list[bytes] = []

        async def receive() -> Message:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": payload, "more_body": False}
            await done.wait()  # the client "disconnects" only once the answer is complete
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers.update((k.decode().lower(), v.decode()) for k, v in message.get("headers", []))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    done.set()

        try:
            await self.app(scope, receive, send)
        finally:
            done.set()
        raw = b"".join(chunks)
        try:
            parsed: Any = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            parsed = raw.decode("utf-8", "replace")
        return Invocation(
            status=status,
            body=parsed,
            request_id=headers.get("x-request-id", request_id),
            retry_after=parse_retry_after(headers.get("retry-after")),
        )
