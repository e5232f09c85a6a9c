"""Routes of the Ollama API: errors in Ollama's shape, and OpenAPI entries with NDJSON streams.

Ollama's clients read an error as ``{"error": "<message>"}`` (the ``ollama`` client raises
``ResponseError`` with that string and the status). The app's exception handlers (``api/errors.py``)
still decide the status, the ``Retry-After`` header and the logging, so an Ollama request fails
exactly as a Chat Completions one does; only the body is reworded, here, per route.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from llmserve.api.hot_route import HotRoute
from llmserve.errors import InvalidRequest, LLMServeError
from llmserve.schemas.ollama import OllamaError

Endpoint = Callable[[Request], Coroutine[Any, Any, Response]]


class NotOffered(LLMServeError):
    """An Ollama operation llmserve does not have (model management): 501, the message says why."""

    status_code = 501
    error_type = "not_implemented"
    code = "not_offered"


# What an Ollama operation can answer besides 200, described with Ollama's error body.
ERROR_STATUSES = {
    "400": "Invalid request, or a feature the model or llmserve does not support (the message says which)",
    "401": "Missing or invalid API key (authentication on)",
    "403": "The key may not use this model",
    "404": "Unknown model",
    "413": "The body, or a message in it, is over the limit",
    "429": "Rate limit or budget: retry after the Retry-After header's seconds",
    "502": "The upstream failed on every try",
    "503": "Loading, overloaded or no deployment available: retry after Retry-After",
    "504": "The upstream timed out on every try",
}
_OLLAMA_ERROR = {"$ref": f"#/components/schemas/{OllamaError.__name__}"}
# A NUL in the URL (400) and a declared body over the size limit (413) are refused by the middleware
# before any route runs, in the OpenAI error shape every path gets.
_BEFORE_ROUTING = {"anyOf": [_OLLAMA_ERROR, {"$ref": "#/components/schemas/ErrorResponse"}]}


def document_errors(app: FastAPI, operations: Mapping[tuple[str, str], Iterable[str]]) -> None:
    """Lists ``operations``' error statuses with Ollama's error body, over the document the app
    already builds (``api/openapi.py`` words every other route's errors)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        spec = build()
        spec["components"]["schemas"][OllamaError.__name__] = OllamaError.model_json_schema()
        for (method, path), statuses in operations.items():
            responses = spec["paths"][path][method]["responses"]
            for status in [status for status in responses if status != "200"]:
                del responses[status]
            for status in statuses:
                schema = _BEFORE_ROUTING if status in ("400", "413") else _OLLAMA_ERROR
                content = {"application/json": {"schema": schema}}
                responses[status] = {"description": ERROR_STATUSES[status], "content": content}
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def _handler(request: Request, exc: Exception) -> Callable[[Request, Exception], Awaitable[Response]]:
    handlers = request.app.exception_handlers
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]  # type: ignore[no-any-return]
    raise exc


def _message(exc: Exception, error: Any) -> str:
    message = str(error.get("message", "")) if isinstance(error, dict) else str(error)
    if isinstance(exc, InvalidRequest) and exc.param == "response_format":
        # The client sent Ollama's "format"; the pipeline words it as OpenAI's response_format.
        return f'format ("json" or a JSON schema) needs structured output, which this model lacks: {message}'
    return message


async def ollama_error(request: Request, exc: Exception) -> Response:
    """The response the app's handlers give ``exc``, its body as Ollama words errors."""
    response = await _handler(request, exc)(request, exc)
    error = orjson.loads(bytes(response.body)).get("error") if response.body else None
    headers = {k: v for k, v in response.headers.items() if k not in ("content-length", "content-type")}
    return Response(
        orjson.dumps({"error": _message(exc, error)}),
        response.status_code,
        headers=headers,
        media_type="application/json",
    )


def _with_ollama_errors(endpoint: Endpoint) -> Endpoint:
    @functools.wraps(endpoint)
    async def wrapped(request: Request) -> Response:
        try:
            return await endpoint(request)
        except Exception as exc:
            return await ollama_error(request, exc)

    return wrapped


class OllamaAPIRoute(APIRoute):
    """A FastAPI route (``route_class``) whose errors, its dependencies' included, are Ollama's."""

    def get_route_handler(self) -> Endpoint:
        return _with_ollama_errors(super().get_route_handler())


class OllamaHotRoute(HotRoute):
    """``/api/chat`` and ``/api/generate``: hot routes (they read their own bodies) whose errors are
    Ollama's and whose streams are NDJSON (``stream`` defaults to true, as in Ollama)."""

    def __init__(self, path: str, endpoint: Endpoint, **kwargs: Any) -> None:
        super().__init__(path, _with_ollama_errors(endpoint), **kwargs)

    def operation(self, ref: Callable[[type[BaseModel]], dict[str, Any]]) -> dict[str, Any]:
        operation = super().operation(ref)
        answer = ref(self.response_model)
        # Each line is a chunk of the answer, or (a failure after the first line) an error.
        line = {"anyOf": [answer, ref(OllamaError)]}
        operation["responses"]["200"] = {
            "description": "NDJSON lines, the last with done: true (one JSON body with stream: false)",
            "content": {"application/x-ndjson": {"schema": line}, "application/json": {"schema": answer}},
        }
        return operation
