"""Domain exceptions → OpenAI error objects, in one place.

Every error a client can see has the shape ``{"error": {"message", "type", "param", "code"}}``.
Invalid input is 400, never FastAPI's default 422; an unexpected failure is a 500 with no internals.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response

from llmserve.api.sse import sse_event
from llmserve.errors import LLMServeError, error_body
from llmserve.observability.context import current_model, request_id_var
from llmserve.services.llm_events import log_llm_error

logger = logging.getLogger(__name__)

_STATUS_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable",
}


class BodyRejected(HTTPException):
    """A 400 raised while a request body is read (in a middleware's ``receive``).

    FastAPI's body parsing re-raises only ``HTTPException`` (anything else becomes its generic
    "error parsing the body"), so this one carries the OpenAI ``param`` and ``code`` itself.
    """

    def __init__(self, message: str, *, param: str | None, code: str) -> None:
        super().__init__(status_code=400, detail=message)
        self.param = param
        self.code = code


def error_response(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> JSONResponse:
    return JSONResponse(
        error_body(message, _STATUS_TYPES.get(status, "api_error"), param=param, code=code), status
    )


def payload_for(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, LLMServeError):
        return error_body(exc.message, exc.error_type, param=exc.param, code=exc.code)
    return error_body("Internal server error", "internal_error", code="internal_error")


def _log_error(exc: BaseException, status: int) -> None:
    """The seed's ``llm_error`` event: what failed, for whom, never the request's text."""
    log_llm_error(
        logger,
        request_id=request_id_var.get(),
        key_id=None,
        model=current_model.get() or None,
        error_type=type(exc).__name__,
        status=status,
        message=exc.message if isinstance(exc, LLMServeError) else "Internal server error",
    )


def stream_error_event(exc: BaseException) -> bytes:
    """For failures after the first streamed byte: the status line is gone, so send it as an event."""
    if not isinstance(exc, LLMServeError):
        logger.exception("stream failed", exc_info=exc)
    _log_error(exc, exc.status_code if isinstance(exc, LLMServeError) else 500)
    return sse_event(payload_for(exc))


def describe_validation(exc: RequestValidationError) -> tuple[str, str | None]:
    first = exc.errors()[0]
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
    param = ".".join(location) or None
    if first.get("type") == "json_invalid":
        return f"We could not parse the JSON body of your request: {first.get('msg')}", None
    message = first.get("msg", "Invalid request")
    return (f"Invalid value for '{param}': {message}" if param else message), param


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LLMServeError)
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is None and exc.status_code in (429, 503):
        retry_after = 1
    # Retry-After is whole seconds (RFC 9110); round up so clients never come back too early.
    if exc.status_code >= 429 or exc.status_code == 413:  # upstream, limit and capacity failures
        _log_error(exc, exc.status_code)
    headers = dict(exc.headers or {})
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return JSONResponse(payload_for(exc), exc.status_code, headers=headers or None)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    message, param = describe_validation(exc)
    return error_response(400, message, param=param)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, BodyRejected):
        return error_response(400, str(exc.detail), param=exc.param, code=exc.code)
    code = "request_too_large" if exc.status_code == 413 else None
    return error_response(exc.status_code, str(exc.detail), code=code)


async def _client_left(request: Request, exc: Exception) -> Response:
    """The client went away (or the server dropped it: a 408 for a body too slow) while its body was
    being read. Nobody is there to answer; it is not a server error and needs no traceback."""
    logger.info("client left during %s %s before its body arrived", request.method, request.url.path)
    return Response(status_code=499)


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    _log_error(exc, 500)
    return JSONResponse(payload_for(exc), 500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(LLMServeError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_left)
    app.add_exception_handler(Exception, _unexpected_error)
