"""Request bodies for the hot routes, read without FastAPI's per-request machinery.

The hot POSTs (``api/hot_route.py``) take the raw ``Request``: the body is read once, parsed with
orjson and validated by the same pydantic model FastAPI would use. Errors keep FastAPI's forms and
order (a body that is not JSON is a 400 before authentication; an invalid field a 400 after it),
raised as ``RequestValidationError`` so ``api/errors.py`` words them as it words FastAPI's own.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from llmserve.api.auth import authenticate

Body = TypeVar("Body", bound=BaseModel)


async def authenticated_body(request: Request, model: type[Body]) -> Body:
    """The JSON body as ``model``, once the caller's key is checked (401 from ``authenticate``)."""
    raw = await request.body()
    payload = _parsed(raw)
    await authenticate(request)
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise RequestValidationError([_in_body(error) for error in exc.errors()]) from None


def _parsed(raw: bytes) -> Any:
    if not raw:  # FastAPI reads an empty body as a missing one
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        error = {"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error", "input": {}}
        raise RequestValidationError([{**error, "ctx": {"error": exc.msg}}]) from None


def _in_body(error: Any) -> dict[str, Any]:
    return {**error, "loc": ("body", *error["loc"])}
