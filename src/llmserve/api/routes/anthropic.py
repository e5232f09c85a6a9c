"""Anthropic Messages surface: POST /v1/messages, POST /v1/messages/count_tokens, and ``HEAD /``.

Both POSTs are ``HotRoute``s (they read their own bodies and check the key, ``Authorization: Bearer``
or ``x-api-key``, as the OpenAI ones do). Their errors are the app's (``api/errors.py``) re-said in
Anthropic's shape. The SDK's ``client.beta.messages`` adds ``?beta=true``: routes match on the path,
so it is accepted as is.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from llmserve import __version__
from llmserve.api.auth import principal_of
from llmserve.api.body import authenticated_body
from llmserve.api.deps import services_of
from llmserve.api.hot_route import HotRoute
from llmserve.api.openapi import REF_TEMPLATE
from llmserve.api.serving import anthropic_messages
from llmserve.api.serving.anthropic_errors import reshaped_error
from llmserve.observability.context import request_id_var
from llmserve.schemas.anthropic import (
    AnthropicCountTokensRequest,
    AnthropicCountTokensResponse,
    AnthropicErrorResponse,
    AnthropicMessageResponse,
    AnthropicMessagesRequest,
)
from llmserve.services.tokens import TokenService

Endpoint = Callable[[Request], Awaitable[Response]]

# What these routes answer besides 200, as Anthropic words it (api/openapi.py keeps entries set here).
_ERROR_STATUSES = {
    "400": "invalid_request_error: the body, a parameter, or content the model does not accept",
    "401": "authentication_error: missing or invalid key (x-api-key or Authorization: Bearer)",
    "403": "permission_error: the key may not use this model",
    "404": "not_found_error: unknown model",
    "413": "request_too_large: the body, or a message in it, is over the limit",
    "429": "rate_limit_error: a rate limit or budget; retry after Retry-After",
    "500": "api_error: the upstream failed on every try",
    "504": "timeout_error: the upstream timed out on every try",
    "529": "overloaded_error: loading, overloaded or no deployment available; retry after Retry-After",
}


def anthropic_errors(endpoint: Endpoint) -> Endpoint:
    """Runs ``endpoint``; an error it raises is answered by the app's handler, then reshaped."""

    @functools.wraps(endpoint)
    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except Exception as exc:
            handlers = request.app.exception_handlers
            handler = next(handlers[cls] for cls in type(exc).__mro__ if cls in handlers)
            return reshaped_error(await handler(request, exc), request_id_var.get() or None)

    return guarded


class AnthropicRoute(HotRoute):
    """A hot route whose errors are Anthropic's."""

    def __init__(self, path: str, endpoint: Endpoint, **kwargs: Any) -> None:
        super().__init__(path, anthropic_errors(endpoint), **kwargs)


def document(app: FastAPI) -> None:
    """Lists these routes' errors with Anthropic's body and statuses, and their stream as Anthropic's
    events, over the document ``api/openapi.py`` builds (which words every other route's)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        spec = build()
        schema = AnthropicErrorResponse.model_json_schema(ref_template=REF_TEMPLATE)
        spec["components"]["schemas"].update(schema.pop("$defs", {}))
        spec["components"]["schemas"][AnthropicErrorResponse.__name__] = schema
        for route in hot_routes:
            _describe(spec["paths"][route.path]["post"]["responses"], streams=route.path == "/v1/messages")
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def _describe(responses: dict[str, Any], *, streams: bool) -> None:
    ref = {"$ref": REF_TEMPLATE.format(model=AnthropicErrorResponse.__name__)}
    for status in [status for status in responses if status != "200"]:
        del responses[status]
    for status, description in _ERROR_STATUSES.items():
        responses[status] = {"description": description, "content": {"application/json": {"schema": ref}}}
    content = responses["200"]["content"]
    if streams:
        content["text/event-stream"] = {"schema": _STREAM_EVENT}
    else:
        content.pop("text/event-stream", None)


# One event of the stream: "event: <type>" and "data: <JSON of the same type>".
_STREAM_EVENT = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {
            "type": "string",
            "enum": [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
                "ping",
                "error",
            ],
        },
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
}


def _tokens(request: Request) -> TokenService:
    # As /v1/tokenize: stateless over the registry, with the caller's input guardrails.
    admission = services_of(request).chat.pipeline.admission
    guardrails = admission.guardrails if admission is not None else None
    if guardrails is not None:
        guardrails = guardrails.for_principal(principal_of(request).guardrails)
    return TokenService(services_of(request).registry, guardrails)


async def create_message(request: Request) -> Response:
    """Anthropic's Messages API: a message, or its event stream with ``"stream": true``."""
    body = await authenticated_body(request, AnthropicMessagesRequest)
    services = services_of(request)
    ask, ctx = await anthropic_messages.ask(request, body, services.registry, services.settings)
    if body.stream:
        return (await anthropic_messages.stream(services.chat, _tokens(request), ask, ctx)).response()
    return (await anthropic_messages.answer(services.chat, ask, ctx)).response()


async def count_message_tokens(request: Request) -> Response:
    """The input tokens a Messages request would use (the model's tokenizer where it is local)."""
    body = await authenticated_body(request, AnthropicCountTokensRequest)
    services = services_of(request)
    counted = await anthropic_messages.count_tokens(
        request, _tokens(request), body, services.registry, services.settings
    )
    return Response(AnthropicCountTokensResponse(**counted).model_dump_json(), media_type="application/json")


async def root(request: Request) -> Response:
    """``HEAD /`` (and ``GET /``): Anthropic clients probe the base URL before their first call."""
    return Response(f'{{"name":"llmserve","version":"{__version__}"}}', media_type="application/json")


hot_routes = [
    AnthropicRoute(
        "/v1/messages",
        create_message,
        body=AnthropicMessagesRequest,
        response=AnthropicMessageResponse,
        tags=["anthropic"],
        example={"model": "tiny-chat", "max_tokens": 64, "messages": [{"role": "user", "content": "Hello!"}]},
    ),
    AnthropicRoute(
        "/v1/messages/count_tokens",
        count_message_tokens,
        body=AnthropicCountTokensRequest,
        response=AnthropicCountTokensResponse,
        tags=["anthropic"],
        example={"model": "tiny-chat", "messages": [{"role": "user", "content": "Hello!"}]},
    ),
]
routes = [Route("/", root, methods=["GET", "HEAD"], include_in_schema=False)]
