"""Domain exceptions. Services raise these; ``api/errors.py`` maps them to HTTP in one place."""

from __future__ import annotations


class LLMServeError(Exception):
    """Base class: carries an OpenAI-style error type, code and param next to the message."""

    status_code = 500
    error_type = "internal_error"
    code: str | None = None

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
