"""``HotRoute``: a plain starlette ``Route`` for the hot POSTs (chat and text completions).

Why: on the gateway benchmark FastAPI's per-request work for an ``APIRoute`` (its handler's exit
stacks, dependency solving and endpoint bookkeeping, even for a route that only takes the raw
``Request``) cost about a fifth of a proxied request's CPU. A starlette ``Route`` runs the endpoint
straight from the router; its exceptions go to the app's handlers through ``ExceptionMiddleware``,
once, as every other route's do. The endpoint
reads and validates its own body (``api/body.py``). It records itself in ``scope["route"]`` as
FastAPI's routes do (the metrics and tracing middleware label requests by it), and it carries its
body and response models so that ``api/openapi.py`` documents it like any other operation.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send


class HotRoute(Route):
    def __init__(
        self,
        path: str,
        endpoint: Callable[[Request], Awaitable[Response]],
        *,
        body: type[BaseModel],
        response: type[BaseModel],
        tags: Sequence[str] = (),
        example: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(path, endpoint, methods=["POST"])
        # Starlette wraps a route's endpoint in a second copy of the exception handling that
        # ExceptionMiddleware already gives every route (and wraps ``send`` again for each streamed
        # chunk); a hot route's errors go to that one handler table directly.
        self.app = _endpoint_app(endpoint)
        self.body_model = body
        self.response_model = response
        self.tags = list(tags)
        self.example = example  # what "Try it out" sends: a request that works on a fresh server

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope

    def _body(self, ref: Callable[[type[BaseModel]], dict[str, Any]]) -> dict[str, Any]:
        media: dict[str, Any] = {"schema": ref(self.body_model)}
        if self.example is not None:
            media["example"] = self.example
        return media

    def operation(self, ref: Callable[[type[BaseModel]], dict[str, Any]]) -> dict[str, Any]:
        """The OpenAPI operation object, with schemas by reference."""
        name = self.name
        return {
            "tags": self.tags,
            "summary": name.replace("_", " ").title(),
            "description": (self.endpoint.__doc__ or "").strip(),
            "operationId": f"{name}{self.path.replace('/', '_')}_post",
            "requestBody": {
                "required": True,
                "content": {"application/json": self._body(ref)},
            },
            "responses": {
                "200": {
                    "description": "The answer (text/event-stream instead when the body asks to stream)",
                    "content": {
                        "application/json": {"schema": ref(self.response_model)},
                        # "stream": true: Server-Sent Events, `data: <chunk JSON>` … `data: [DONE]`
                        "text/event-stream": {"schema": {"type": "string"}},
                    },
                },
            },
        }


def _endpoint_app(endpoint: Callable[[Request], Awaitable[Response]]) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        response = await endpoint(Request(scope, receive, send))
        await response(scope, receive, send)

    return app
