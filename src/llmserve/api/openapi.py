"""The OpenAPI document: FastAPI's, plus the operations of the ``HotRoute``s it cannot see, with the
errors the server really sends (never FastAPI's 422), its security schemes and its streams."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from llmserve.api.hot_route import HotRoute
from llmserve.schemas.errors import ErrorResponse

REF_TEMPLATE = "#/components/schemas/{model}"


def document_hot_routes(app: FastAPI, routes: Sequence[HotRoute]) -> None:
    """Make ``app.openapi()`` list ``routes`` with their body and response schemas."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
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
            _describe_errors(document, ref(ErrorResponse))
            _describe_security(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


# What any API operation may answer besides its success; 404 also where a path names a resource.
_ERRORS = {
    "400": "Invalid request (the body, a parameter, or the model's context)",
    "401": "Missing or invalid API key (authentication on)",
    "403": "The key may not do this (a model it may not use, an admin route)",
    "413": "The body, or a message in it, is over the limit",
    "429": "Rate limit or budget: retry after the Retry-After header's seconds",
    "503": "Loading, overloaded or no deployment available: retry after Retry-After",
}
_OPEN_PATHS = frozenset({"/health", "/ready", "/metrics"})  # no key, no body: only their own statuses


def _describe_errors(document: dict[str, Any], error: dict[str, Any]) -> None:
    """Every operation lists the error statuses the server sends, each with the error object; FastAPI's
    422 (never sent: invalid input is a 400) is dropped."""
    for path, item in document["paths"].items():
        for operation in item.values():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            responses.pop("422", None)
            if path in _OPEN_PATHS:
                continue
            statuses = {**_ERRORS, **({"404": "Not found (or another key's)"} if "{" in path else {})}
            for status, description in statuses.items():
                responses.setdefault(
                    status, {"description": description, "content": {"application/json": {"schema": error}}}
                )
    document["components"]["schemas"].pop("HTTPValidationError", None)
    document["components"]["schemas"].pop("ValidationError", None)


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
