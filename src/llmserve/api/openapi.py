"""The OpenAPI document: FastAPI's, plus the operations of the ``HotRoute``s it cannot see."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from llmserve.api.hot_route import HotRoute

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
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
