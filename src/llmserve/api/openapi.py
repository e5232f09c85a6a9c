"""The OpenAPI document: FastAPI's, plus the operations of the ``HotRoute``s it cannot see, with the
errors each operation really sends (never FastAPI's 422), its security schemes, its streams (each
event's schema) and its binary downloads.

The fuzz tier (tests/fuzz) holds the server to this document: a status an operation answers that is
not listed here, or a body that does not match its schema, fails it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from llmserve.api.hot_route import HotRoute
from llmserve.schemas.errors import ErrorResponse
from llmserve.schemas.openai import (
    ChatCompletionChunk,
    ChatCompletionRequest,
    CompletionChunk,
    CompletionRequest,
    EmbeddingRequest,
)
from llmserve.schemas.seed import SeedStreamEvent

REF_TEMPLATE = "#/components/schemas/{model}"
Ref = Callable[[type[BaseModel]], dict[str, Any]]


def document_hot_routes(app: FastAPI, routes: Sequence[HotRoute]) -> None:
    """Make ``app.openapi()`` list ``routes`` with their body and response schemas."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _document(app, routes)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document(app: FastAPI, routes: Sequence[HotRoute]) -> dict[str, Any]:
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})

    def ref(model: type[BaseModel]) -> dict[str, Any]:
        schema = model.model_json_schema(ref_template=REF_TEMPLATE)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
        return {"$ref": REF_TEMPLATE.format(model=model.__name__)}

    for route in routes:
        document["paths"].setdefault(route.path, {})["post"] = route.operation(ref)
    error = ref(ErrorResponse)
    _describe_errors(document, error)
    _describe_streams(document, ref, error)
    _describe_downloads(document)
    _describe_async_bodies(document, ref)
    _describe_links(document)
    _describe_security(document)
    return document


_DESCRIPTIONS = {
    "400": "Invalid request: the body, a parameter, text no route can keep (NUL), or the model's context",
    "401": "Missing or invalid API key (authentication on)",
    "403": "The key may not do this: a model it may not use, an admin route, keys while auth is off",
    "404": "Not found (or another key's), an unknown model, or a feature this server has switched off",
    "409": "The resource is in a state that does not allow this (a finished job or batch)",
    "413": "The body, a file, a tenant's stored files, or a message in the body is over its limit",
    "429": "Rate limit or budget: retry after the Retry-After header's seconds",
    "502": "The upstream failed on every try, or refused the gateway's credentials",
    "503": "Loading, failed to load, overloaded or no deployment available: retry after Retry-After",
    "504": "The upstream timed out on every try",
}

# An operation that runs a model: the key may not use it, it may not exist, and the deployments
# answering it may be at their limits, loading, failing or slow.
_GENERATES = frozenset({"403", "404", "429", "502", "503", "504"})
# Operations that name a model but only count its tokens (no deployment is called).
_COUNTS = frozenset({"404", "503"})

# Beyond 400 and 401 (every key-checked operation), 413 (one with a body) and 404 (a path naming a
# resource): what each operation can also answer, by path prefix and by operation.
_BY_PREFIX: tuple[tuple[str, frozenset[str]], ...] = (
    ("/admin/", frozenset({"403"})),  # the master key or an admin key
    ("/admin/keys", frozenset({"404"})),  # key management is off without a database for keys
    ("/admin/usage", frozenset({"404"})),  # the usage ledger is off
    ("/v1/files", frozenset({"404"})),  # jobs and batches are off
    ("/v1/batches", frozenset({"404"})),
    ("/v1/jobs", frozenset({"404"})),
    ("/v1/async/", frozenset({"403", "404"})),  # a model the key may not use; jobs are off
)
_BY_OPERATION: dict[tuple[str, str], frozenset[str]] = {
    ("post", "/v1/chat/completions"): _GENERATES,
    ("post", "/v1/completions"): _GENERATES,
    ("post", "/v1/embeddings"): _GENERATES,
    ("post", "/chat/new/message/"): _GENERATES,
    ("post", "/chat/stream"): _GENERATES,
    ("get", "/chat/stream"): _GENERATES,
    ("post", "/chat"): _GENERATES,
    ("post", "/v1/responses"): _GENERATES,
    ("post", "/v1/tokenize"): _COUNTS,
    ("post", "/v1/estimate"): _COUNTS,
    ("get", "/chat/get/messages/"): frozenset({"404"}),  # an unknown conversation, or another key's
    ("delete", "/v1/jobs/{job_id}"): frozenset({"409"}),  # already finished
    ("post", "/v1/batches/{batch_id}/cancel"): frozenset({"409"}),
    ("post", "/admin/keys"): frozenset({"403"}),  # auth_disabled
    ("patch", "/admin/keys/{key_id}"): frozenset({"403"}),
}

# No key, no body: only their own statuses, and 400 for a NUL (%00) in the query, refused for every path.
_OPEN_OPERATIONS: dict[tuple[str, str], frozenset[str]] = {
    ("get", "/health"): frozenset({"400"}),
    ("get", "/ready"): frozenset({"400", "503"}),
    ("get", "/metrics"): frozenset({"400", "404"}),
}
_OPEN_PATHS = frozenset(path for _, path in _OPEN_OPERATIONS)


def error_statuses(method: str, path: str, operation: dict[str, Any]) -> frozenset[str]:
    """The error statuses ``method path`` can answer with (``operation``: its OpenAPI object)."""
    if (method, path) in _OPEN_OPERATIONS:
        return _OPEN_OPERATIONS[method, path]
    statuses = {"400", "401"}
    if "requestBody" in operation:
        statuses.add("413")
    if "{" in path:
        statuses.add("404")
    for prefix, extra in _BY_PREFIX:
        if path.startswith(prefix):
            statuses |= extra
    return frozenset(statuses | _BY_OPERATION.get((method, path), frozenset()))


def _describe_errors(document: dict[str, Any], error: dict[str, Any]) -> None:
    """Every operation lists the error statuses it sends, each with the error object; FastAPI's 422
    (never sent: invalid input is a 400) is dropped."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status in sorted(error_statuses(method, path, operation)):
                responses[status] = {
                    "description": responses.get(status, {}).get("description", _DESCRIPTIONS[status]),
                    "content": {"application/json": {"schema": error}},
                }
    document["components"]["schemas"].pop("HTTPValidationError", None)
    document["components"]["schemas"].pop("ValidationError", None)


# Operations that stream Server-Sent Events, with the model of each event's data; ``json``: whether
# the same operation answers application/json when the body does not ask to stream.
_STREAMS: dict[tuple[str, str], tuple[type[BaseModel], bool]] = {
    ("post", "/v1/chat/completions"): (ChatCompletionChunk, True),
    ("post", "/v1/completions"): (CompletionChunk, True),
    ("post", "/chat/stream"): (SeedStreamEvent, False),
    ("get", "/chat/stream"): (SeedStreamEvent, False),
    ("post", "/chat"): (SeedStreamEvent, True),
}


def sse_event_schema(data: dict[str, Any], error: dict[str, Any]) -> dict[str, Any]:
    """One Server-Sent Event as OpenAPI 3.2's ``itemSchema`` reads it (before 3.2, ``schema`` of a
    text/event-stream describes each event): ``data`` is the JSON of ``data``, of an error object
    (a failure after the first byte), or the text ``[DONE]`` that ends the stream."""
    return {
        "type": "object",
        "required": ["data"],
        "properties": {
            "data": {
                "anyOf": [
                    {"const": "[DONE]"},
                    {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": {"anyOf": [data, error]},
                    },
                ]
            },
            "event": {"type": "string"},
        },
        "description": "data: <JSON> per event, then data: [DONE]",
    }


def _describe_streams(document: dict[str, Any], ref: Ref, error: dict[str, Any]) -> None:
    _describe_other_streams(document, error)
    for (method, path), (model, json_too) in _STREAMS.items():
        operation = document["paths"].get(path, {}).get(method)
        if operation is None:
            continue
        answer = operation["responses"].setdefault("200", {"description": "Successful Response"})
        content: dict[str, Any] = answer.setdefault("content", {}) if json_too else {}
        content["text/event-stream"] = {"schema": sse_event_schema(ref(model), error)}
        answer["content"] = content


def _describe_other_streams(document: dict[str, Any], error: dict[str, Any]) -> None:
    """A stream no entry above describes (a new surface's) is still a stream of events, each with
    JSON data, not one string."""
    for item in document["paths"].values():
        for operation in item.values():
            for answer in operation.get("responses", {}).values():
                media = answer.get("content", {}).get("text/event-stream")
                if media is not None and media.get("schema") == {"type": "string"}:
                    media["schema"] = sse_event_schema({}, error)


def _describe_downloads(document: dict[str, Any]) -> None:
    """A file's content is its bytes (JSONL for batch files), not a JSON document."""
    operation = document["paths"].get("/v1/files/{file_id}/content", {}).get("get")
    if operation is not None:
        operation["responses"]["200"] = {
            "description": "The file's bytes, as uploaded or as the batch wrote them",
            "content": {"application/jsonl": {"schema": {"type": "string", "format": "binary"}}},
        }


# An async job's body is its synchronous endpoint's (checked the same way at submit), plus callback_url.
_ASYNC_BODIES: dict[str, type[BaseModel]] = {
    "/v1/async/chat/completions": ChatCompletionRequest,
    "/v1/async/completions": CompletionRequest,
    "/v1/async/embeddings": EmbeddingRequest,
}
_CALLBACK = {
    "type": "object",
    "properties": {"callback_url": {"type": "string", "description": "POSTed the finished job (signed)"}},
}


def _describe_async_bodies(document: dict[str, Any], ref: Ref) -> None:
    for path, model in _ASYNC_BODIES.items():
        operation = document["paths"].get(path, {}).get("post")
        if operation is not None:
            schema = {"allOf": [ref(model), _CALLBACK]}
            operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}


# OpenAPI links: the id in what a call creates is the path parameter of the calls that use it (clients
# and the fuzz tier's stateful runs follow them). (method, path, status) -> (parameter, operations).
_KEY = (
    "key_id",
    (("get", "/admin/keys/{key_id}"), ("patch", "/admin/keys/{key_id}"), ("delete", "/admin/keys/{key_id}")),
)
_FILE = (
    "file_id",
    (
        ("get", "/v1/files/{file_id}"),
        ("get", "/v1/files/{file_id}/content"),
        ("delete", "/v1/files/{file_id}"),
    ),
)
_BATCH = ("batch_id", (("get", "/v1/batches/{batch_id}"), ("post", "/v1/batches/{batch_id}/cancel")))
_JOB = ("job_id", (("get", "/v1/jobs/{job_id}"), ("delete", "/v1/jobs/{job_id}")))
_LINKS: dict[tuple[str, str, str], tuple[str, tuple[tuple[str, str], ...]]] = {
    ("post", "/admin/keys", "201"): _KEY,
    ("post", "/v1/files", "200"): _FILE,
    ("post", "/v1/batches", "200"): _BATCH,
    ("post", "/v1/async/chat/completions", "202"): _JOB,
    ("post", "/v1/async/completions", "202"): _JOB,
    ("post", "/v1/async/embeddings", "202"): _JOB,
}


def _describe_links(document: dict[str, Any]) -> None:
    paths = document["paths"]
    for (method, path, status), (parameter, targets) in _LINKS.items():
        answer = paths.get(path, {}).get(method, {}).get("responses", {}).get(status)
        if answer is None:
            continue
        links = answer.setdefault("links", {})
        for target_method, target_path in targets:
            target = paths.get(target_path, {}).get(target_method)
            if target is not None:
                name = target["operationId"]
                links[name] = {"operationId": name, "parameters": {parameter: "$response.body#/id"}}


def _describe_security(document: dict[str, Any]) -> None:
    """Bearer or x-api-key, as api/auth.py reads them (only enforced when a master key is set)."""
    document["components"]["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <key>"},
        "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
    }
    for path, item in document["paths"].items():
        if path not in _OPEN_PATHS:
            for operation in item.values():
                operation.setdefault("security", [{"bearer": []}, {"apiKey": []}])
