"""Domain exceptions, and the OpenAI error body they become on the wire.

Services raise these; ``api/errors.py`` maps them to HTTP in one place. ``error_body`` is the body's
one builder, for the API and for the jobs that store a failed request's answer.
"""

from __future__ import annotations

from typing import Any


def error_body(
    message: str, error_type: str, *, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """OpenAI's error shape: ``{"error": {"message", "type", "param", "code"}}``, every key present."""
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


class LLMServeError(Exception):
    """Base class: carries an OpenAI-style error type, code and param next to the message."""

    status_code = 500
    error_type = "internal_error"
    code: str | None = None
    # Extra response headers (e.g. x-ratelimit-* on a 429); api/errors.py sends them.
    headers: dict[str, str] | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code


class InvalidRequest(LLMServeError):
    status_code = 400
    error_type = "invalid_request_error"


class ContextLengthExceeded(InvalidRequest):
    code = "context_length_exceeded"


class NotFound(LLMServeError):
    status_code = 404
    error_type = "invalid_request_error"


class ModelNotFound(NotFound):
    code = "model_not_found"


class ConversationNotFound(NotFound):
    code = "conversation_not_found"


class ModelLoading(LLMServeError):
    """The model is still loading; clients should retry shortly."""

    status_code = 503
    error_type = "service_unavailable"
    code = "model_loading"


class ModelLoadFailed(LLMServeError):
    status_code = 503
    error_type = "service_unavailable"
    code = "model_load_failed"


class ProviderError(LLMServeError):
    status_code = 502
    error_type = "api_error"
    code = "provider_error"


class Overloaded(LLMServeError):
    """Too much queued work; the client should retry after ``retry_after`` seconds."""

    status_code = 503
    error_type = "service_unavailable"
    code = "overloaded"
    retry_after = 1


class RateLimited(LLMServeError):
    """Every deployment that could answer is at its limit (or answered 429); retry after a while."""

    status_code = 429
    error_type = "rate_limit_error"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: float | None = None, param: str | None = None) -> None:
        super().__init__(message, param=param)
        self.retry_after = retry_after


class UpstreamError(ProviderError):
    """A remote deployment failed. ``retryable`` says whether another try (or deployment) may succeed.

    ``kind`` is what went wrong: ``connect`` (refused, reset, DNS), ``timeout`` (connect, first token,
    idle or total), ``status`` (an HTTP error status; ``upstream_status`` holds it) or ``protocol``
    (a body that is not what the protocol promises, e.g. malformed JSON or a stream cut short).
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        retryable: bool,
        upstream_status: int | None = None,
        retry_after: float | None = None,
        deployment: str | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.retryable = retryable
        self.upstream_status = upstream_status
        self.retry_after = retry_after
        self.deployment = deployment
        if kind == "timeout":
            self.status_code = 504
            self.code = "upstream_timeout"
        elif upstream_status == 429:
            self.status_code = 429
            self.error_type = "rate_limit_error"
            self.code = "rate_limit_exceeded"


class NoDeploymentAvailable(LLMServeError):
    """Every deployment of the group (and its fallbacks) is unavailable: breakers open or all failed."""

    status_code = 503
    error_type = "service_unavailable"
    code = "no_deployment_available"
    retry_after: float = 1.0  # set per refusal: when the first open breaker lets a probe through


class Unauthorized(LLMServeError):
    status_code = 401
    error_type = "authentication_error"
    code = "invalid_api_key"


class Forbidden(LLMServeError):
    status_code = 403
    error_type = "permission_error"
    code = "forbidden"


class BudgetExceeded(LLMServeError):
    """The key's spend over its budget period would pass its limit."""

    status_code = 429
    error_type = "rate_limit_error"
    code = "budget_exceeded"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QueueFull(LLMServeError):
    """The admission queue of a model group is full, or the wait for a slot ran past queue_timeout."""

    status_code = 503
    error_type = "service_unavailable"
    code = "queue_full"

    def __init__(self, message: str, *, retry_after: float = 1.0, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class GuardrailViolation(LLMServeError):
    """A guardrail refused the request; ``rule`` names the one that fired (never the matched text)."""

    status_code = 400
    error_type = "invalid_request_error"
    code = "guardrail_violation"

    def __init__(self, message: str, *, rule: str, status_code: int = 400) -> None:
        # Every 413 the server sends carries one code, whichever limit fired (the body's bytes or a
        # message's characters): a client handles "too large" once, not per rule.
        super().__init__(message, param=None, code="request_too_large" if status_code == 413 else None)
        self.rule = rule
        self.status_code = status_code


class Conflict(LLMServeError):
    """The resource is not in a state that allows this (e.g. cancelling a finished job)."""

    status_code = 409
    error_type = "invalid_request_error"
    code = "conflict"
