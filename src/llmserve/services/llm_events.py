"""The three structured events of an LLM call: ``llm_request``, ``llm_response``, ``llm_error``.

Each is one log line whose message is the event name and whose fields travel as ``extra`` (the JSON
formatter writes them as keys, the text formatter as ``key=value``). Prompt and answer text are left
out unless the caller passes ``log_payloads=True`` (``observability.log_payloads`` in the settings);
even then they are PII-masked first. Sizes (characters, message count) are always logged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from llmserve.guardrails import mask_pii

LLM_REQUEST = "llm_request"
LLM_RESPONSE = "llm_response"
LLM_ERROR = "llm_error"
_SERVER_ERROR = 500


class RoleMessage(Protocol):
    """A chat message object: ``types.ChatMessage`` (``content`` is a str) or the wire's
    ``schemas.openai.ChatMessageIn`` (``text()`` joins its text parts)."""

    @property
    def role(self) -> str: ...


# A completion prompt, or chat messages as objects or as {"role", "content"} mappings.
PromptMessages = str | Sequence[RoleMessage | Mapping[str, Any]]


def log_llm_request(
    logger: logging.Logger,
    *,
    request_id: str,
    key_id: str | None,
    model: str,
    endpoint: str,
    stream: bool,
    prompt_messages: PromptMessages | None = None,
    log_payloads: bool = False,
) -> None:
    fields: dict[str, Any] = {
        "event": LLM_REQUEST,
        "request_id": request_id,
        "key_id": key_id,
        "model": model,
        "endpoint": endpoint,
        "stream": stream,
    }
    if prompt_messages is not None:
        messages = _as_messages(prompt_messages)
        fields["prompt_messages"] = len(messages)
        fields["prompt_chars"] = sum(len(content) for _, content in messages)
        if log_payloads:
            fields["prompt"] = [{"role": role, "content": _masked(content)} for role, content in messages]
    logger.info(LLM_REQUEST, extra=fields)


def log_llm_response(
    logger: logging.Logger,
    *,
    request_id: str,
    key_id: str | None,
    model: str,
    deployment: str | None,
    input_tokens: int,
    output_tokens: int,
    cost_usd: float,
    latency_ms: float,
    ttft_ms: float | None,
    cache_status: str,
    attempts: int,
    completion_text: str | None = None,
    log_payloads: bool = False,
) -> None:
    fields: dict[str, Any] = {
        "event": LLM_RESPONSE,
        "request_id": request_id,
        "key_id": key_id,
        "model": model,
        "deployment": deployment,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cost_usd": round(cost_usd, 8),
        "latency_ms": round(latency_ms, 2),
        "ttft_ms": None if ttft_ms is None else round(ttft_ms, 2),
        "cache_status": cache_status,
        "attempts": attempts,
    }
    if completion_text is not None:
        fields["completion_chars"] = len(completion_text)
        if log_payloads:
            fields["completion"] = _masked(completion_text)
    logger.info(LLM_RESPONSE, extra=fields)


def log_llm_error(
    logger: logging.Logger,
    *,
    request_id: str,
    key_id: str | None,
    model: str | None,
    error_type: str,
    status: int,
    message: str,
) -> None:
    """Server-side failures (5xx) at ERROR; refusals the client caused or can retry (4xx) at WARNING."""
    fields: dict[str, Any] = {
        "event": LLM_ERROR,
        "request_id": request_id,
        "key_id": key_id,
        "model": model,
        "error_type": error_type,
        "status": status,
        # "message" is the log line's own field; error texts may quote the prompt, so they are masked.
        "error_message": _masked(message),
    }
    level = logging.ERROR if status >= _SERVER_ERROR else logging.WARNING
    logger.log(level, LLM_ERROR, extra=fields)


def _masked(text: str) -> str:
    return mask_pii(text)[0]


def _as_messages(prompt: PromptMessages) -> list[tuple[str, str]]:
    if isinstance(prompt, str):
        return [("prompt", prompt)]
    messages = []
    for message in prompt:
        if isinstance(message, Mapping):
            messages.append((str(message.get("role", "")), _content_text(message.get("content"))))
        elif callable(text := getattr(message, "text", None)):
            messages.append((message.role, str(text())))
        else:
            messages.append((message.role, _content_text(getattr(message, "content", None))))
    return messages


def _content_text(content: object) -> str:
    """OpenAI content: a string, or a list of parts of which the text parts count."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(_part_text(part) or "") for part in content)
    return ""


def _part_text(part: object) -> object:
    return part.get("text") if isinstance(part, Mapping) else getattr(part, "text", None)
