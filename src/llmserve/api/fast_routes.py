"""POST /v1/chat/completions and /v1/completions without FastAPI's per-request machinery.

Why: on the gateway benchmark FastAPI's request handling (dependency solving, the body read through
``Request``, its exit stacks and routing) cost about a fifth of a proxied request's CPU, as much as
the upstream call. This innermost middleware serves those two routes' well-formed requests itself:
it reads the body once, parses it with orjson, validates it with the same pydantic model, runs the
same ``authenticate`` and calls the same route function, so the answer is the one FastAPI would send.

Anything else goes to FastAPI untouched, with the body replayed when it was already read: a body
that is not a JSON object or fails validation, a non-JSON content type, a disconnect. So every error
FastAPI reports (400 with ``describe_validation``'s message, the order of 400 versus 401) stays
FastAPI's own. Errors raised once the request is taken (401 from ``authenticate``, the services'
4xx and 5xx, a 413 while the body streams in) go to the app's exception handlers, as FastAPI's
``ExceptionMiddleware`` would send them; any other exception propagates to the outer middleware.
The routes stay registered with FastAPI, so OpenAPI lists them and the fallback has them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmserve.api.auth import authenticate
from llmserve.api.deps import Services
from llmserve.api.routes import openai
from llmserve.schemas.openai import ChatCompletionRequest, CompletionRequest

Endpoint = Callable[[Any, Any, Request, Response], Awaitable[Response]]
Handler = Callable[[Request, Exception], Awaitable[Response]]

# path -> (body model, route function); the functions take (body, chat service, request, response).
FAST_ROUTES: dict[str, tuple[type[BaseModel], Endpoint]] = {
    "/v1/chat/completions": (ChatCompletionRequest, openai.create_chat_completion),  # type: ignore[dict-item]
    "/v1/completions": (CompletionRequest, openai.create_completion),  # type: ignore[dict-item]
}
# The APIRoute objects FastAPI puts in ``scope["route"]`` when it serves these paths.
_ROUTES = {
    route.path: route
    for route in openai.router.routes
    if isinstance(route, APIRoute) and route.path in FAST_ROUTES and "POST" in (route.methods or ())
}
_JSON = b"application/json"
_SERVER_ERROR = 500  # a handler for it (or Exception) is the outermost middleware's, as in starlette


class FastOpenAIRoutes:
    """Innermost middleware: takes the well-formed requests of ``FAST_ROUTES``, passes on the rest."""

    def __init__(self, app: ASGIApp, api: FastAPI) -> None:
        self.app = app
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = FAST_ROUTES.get(scope["path"]) if scope["type"] == "http" else None
        if (
            target is None
            or scope["method"] != "POST"
            or scope.get("root_path")
            or self.api.dependency_overrides  # tests that swap a dependency get FastAPI's resolution
            or not _is_json(scope)
        ):
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        request = Request(scope, receive, send)
        chunks: list[bytes] = []
        try:
            while True:
                message = await receive()
                messages.append(message)
                if message["type"] != "http.request":  # a disconnect: FastAPI's behaviour, not ours
                    await self.app(scope, _replay(messages, receive), send)
                    return
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
        except Exception as exc:  # the size limit's 413, raised while the body streams in
            await self._handle(exc, request, scope, receive, send, started=False)
            return
        model, endpoint = target
        try:
            payload = orjson.loads(b"".join(chunks))
            parsed = model.model_validate(payload) if isinstance(payload, dict) else None
        except (orjson.JSONDecodeError, ValidationError):
            parsed = None
        if parsed is None:
            await self.app(scope, _replay(messages, receive), send)
            return
        route = _ROUTES.get(scope["path"])
        if route is not None:  # what FastAPI's router records, for the metrics and tracing labels
            scope["route"], scope["endpoint"], scope["path_params"] = route, route.endpoint, {}
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await authenticate(request)
            services: Services = self.api.state.services
            response = await endpoint(parsed, services.chat, request, Response())
            await response(scope, receive, tracked_send)
        except Exception as exc:
            await self._handle(exc, request, scope, receive, send, started=started)

    async def _handle(
        self, exc: Exception, request: Request, scope: Scope, receive: Receive, send: Send, *, started: bool
    ) -> None:
        """What starlette's ExceptionMiddleware does: the app's handler for the exception's class, except
        for ``Exception`` itself, which the outermost ServerErrorMiddleware handles (and re-raises)."""
        handler = _handler_for(self.api, exc)
        if handler is None:
            raise exc
        if started:
            raise RuntimeError("Caught handled exception, but response already started.") from exc
        response = await handler(request, exc)
        await response(scope, receive, send)
        exc.__traceback__ = None


def _handler_for(api: FastAPI, exc: Exception) -> Handler | None:
    handlers: dict[Any, Any] = api.exception_handlers
    if isinstance(exc, HTTPException) and exc.status_code in handlers and exc.status_code != _SERVER_ERROR:
        return handlers[exc.status_code]  # type: ignore[no-any-return]
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]  # type: ignore[no-any-return]
    return None


def _is_json(scope: Scope) -> bool:
    for name, value in scope["headers"]:
        if name == b"content-type":
            return bool(value.split(b";", 1)[0].strip().lower() == _JSON)
    return False


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """``receive`` that first gives back what was already read."""
    pending = deque(messages)

    async def replayed() -> Message:
        return pending.popleft() if pending else await receive()

    return replayed
