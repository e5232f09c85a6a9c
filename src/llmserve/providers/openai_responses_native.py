"""A client's own Responses API body on its way to an OpenAI upstream's ``/responses``.

``api/serving/responses_native.py`` decides which requests carry one (``types.NativeRequest`` with
protocol ``openai-responses``) and has already rebuilt its ``input``: the stored chain named by
``previous_response_id`` plus this input, because llmserve owns the state. Here a deployment with
``responses_api: native`` sends it (its own model, ``store: false``: the upstream keeps nothing we
would have to delete), and the upstream's Response JSON or typed stream events come back as the
pipeline's ``Completion`` / ``Delta`` / ``Usage``, with failures raised as the chat path raises them,
so routing, retries, fallbacks and breakers treat both alike. Fields the pipeline does not know
(``reasoning``, ``include``, ``prompt_cache_key``, ...) are in the body and travel untouched.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from llmserve.config import ModelDeployment
from llmserve.errors import ContextLengthExceeded, InvalidRequest, LLMServeError, UpstreamError
from llmserve.providers.http import Timeouts, UpstreamHTTP
from llmserve.types import (
    ChatInput,
    Choice,
    Completion,
    Delta,
    FinishReason,
    GenerationInput,
    StreamEvent,
    Usage,
)

PROTOCOL = "openai-responses"
# Fields whose meaning llmserve owns (its stored state, its job queue, its own extensions): the
# upstream gets them as llmserve decides, never as the client sent them.
_OWNED = ("previous_response_id", "background", "stream", "store", "priority", "conversation")
# Failure codes another try or deployment may fix; any other code is about the request itself.
_RETRYABLE_CODES = frozenset({"server_error", "rate_limit_exceeded", "vector_store_timeout"})
_INCOMPLETE: dict[str, FinishReason] = {"max_output_tokens": "length", "content_filter": "content_filter"}
Estimate = Callable[[], Awaitable[int]]


@dataclass(frozen=True)
class NativeCall:
    """Where and how the provider reaches the upstream's ``/responses``."""

    http: UpstreamHTTP
    url: str
    headers: Mapping[str, str]
    timeouts: Timeouts
    deployment_id: str


def native_payload(
    deployment: ModelDeployment, request: GenerationInput, *, stream: bool
) -> dict[str, Any] | None:
    """The client's Responses body for this deployment, or None where the request must go as a chat
    call: the deployment is not native, or the pipeline rewrote the messages (the input guardrails,
    the context fit), which only the chat call carries."""
    native = request.options.native
    if deployment.responses_api != "native" or native is None or native.protocol != PROTOCOL:
        return None
    if not isinstance(request, ChatInput) or request.messages != native.messages:
        return None
    payload = {name: value for name, value in native.body.items() if name not in _OWNED}
    payload["model"] = deployment.model
    payload["store"] = False
    if request.options.max_tokens is not None:  # the pipeline's bound (limits, budgets) is the one sent
        payload["max_output_tokens"] = request.options.max_tokens
    if stream:
        payload["stream"] = True
    return payload


async def complete(call: NativeCall, payload: dict[str, Any], estimate: Estimate) -> Completion:
    body = await call.http.post_json(
        call.url, payload, call.headers, timeouts=call.timeouts, deployment=call.deployment_id
    )
    if not isinstance(body, dict) or not isinstance(body.get("output"), list):
        raise protocol_error(call.deployment_id, "the answer is not a Response (no output)")
    status = body.get("status")
    if status == "failed":
        raise failure(body.get("error"), call.deployment_id)
    if status not in ("completed", "incomplete"):
        raise protocol_error(call.deployment_id, f"the answer's status is {status!r}")
    text, calls = output_of(body["output"])
    choice = Choice(0, text, finish_reason(body, bool(calls)), tuple(calls))
    usage = usage_of(body.get("usage"))
    if usage is None:  # an upstream that reports no usage: estimate, and say so (as the chat path does)
        usage = Usage(await estimate(), -(-len(text) // 4), estimated=True)
    return Completion([choice], usage)


async def stream(
    call: NativeCall, payload: dict[str, Any], estimate: Estimate
) -> AsyncGenerator[StreamEvent, None]:
    events = call.http.stream_sse(
        call.url, payload, call.headers, timeouts=call.timeouts, deployment=call.deployment_id
    )
    reader = StreamReader(call.deployment_id)
    try:
        async for event in events:
            for delta in reader.feed(event.data):
                yield delta
            if reader.finished:
                break
        else:
            raise protocol_error(call.deployment_id, "the stream ended early (no response.completed)")
    finally:
        # A client that stops early closes the upstream connection now: that is how its cancel
        # reaches the upstream.
        if isinstance(events, AsyncGenerator):
            await events.aclose()
    if reader.usage is None:  # no usage in response.completed: estimated, one token a text delta
        reader.usage = Usage(await estimate(), reader.text_deltas, estimated=True)
    yield reader.usage


class StreamReader:
    """Turns the upstream's typed events into deltas of choice 0 (chat-chunk shapes for tool calls,
    as ``openai_compat`` passes them on); events the pipeline has no use for are skipped."""

    def __init__(self, deployment_id: str) -> None:
        self.deployment_id = deployment_id
        self.calls: dict[int, int] = {}  # the upstream's output_index → our tool-call index
        self.text_deltas = 0
        self.finished = False
        self.usage: Usage | None = None
        self._handlers: dict[str, Callable[[dict[str, Any]], list[Delta]]] = {
            "response.output_text.delta": self._text,
            "response.refusal.delta": self._text,  # said as text, as in a whole answer
            "response.output_item.added": self._item,
            "response.function_call_arguments.delta": self._arguments,
            "response.completed": self._end,
            "response.incomplete": self._end,
            "response.failed": self._failed,
            "error": self._error,
        }

    def feed(self, data: str) -> list[Delta]:
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise protocol_error(self.deployment_id, "the stream carried malformed JSON") from exc
        if not isinstance(event, dict):
            raise protocol_error(self.deployment_id, "a stream event is not a JSON object")
        handler = self._handlers.get(str(event.get("type")))
        return [] if handler is None else handler(event)

    def _text(self, event: dict[str, Any]) -> list[Delta]:
        text = event.get("delta")
        if not isinstance(text, str) or not text:
            return []
        self.text_deltas += 1
        return [Delta(0, text)]

    def _item(self, event: dict[str, Any]) -> list[Delta]:
        item = event.get("item")
        if not isinstance(item, dict) or item.get("type") != "function_call":
            return []  # a message's text comes in its deltas; reasoning and others are not carried
        index = self.calls[_position(event)] = len(self.calls)
        function = {"name": str(item.get("name", "")), "arguments": str(item.get("arguments") or "")}
        head = {"index": index, "id": item.get("call_id"), "type": "function", "function": function}
        return [Delta(0, "", tool_calls=(head,))]

    def _arguments(self, event: dict[str, Any]) -> list[Delta]:
        index = self.calls.get(_position(event))
        if index is None:
            raise protocol_error(self.deployment_id, "function-call arguments for an item never added")
        piece = {"index": index, "function": {"arguments": str(event.get("delta", ""))}}
        return [Delta(0, "", tool_calls=(piece,))]

    def _end(self, event: dict[str, Any]) -> list[Delta]:
        response = event.get("response")
        response = response if isinstance(response, dict) else {}
        self.finished = True
        self.usage = usage_of(response.get("usage"))
        return [Delta(0, "", finish_reason(response, bool(self.calls)))]

    def _failed(self, event: dict[str, Any]) -> list[Delta]:
        response = event.get("response")
        raise failure(response.get("error") if isinstance(response, dict) else None, self.deployment_id)

    def _error(self, event: dict[str, Any]) -> list[Delta]:
        raise failure(event, self.deployment_id)


def _position(event: dict[str, Any]) -> int:
    position = event.get("output_index")
    return position if isinstance(position, int) else -1


def output_of(output: list[Any]) -> tuple[str, list[dict[str, Any]]]:
    """The text of the output's messages and its function calls as chat tool calls."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for item in output:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            texts.extend(_part_text(part) for part in item.get("content") or ())
        elif item.get("type") == "function_call":
            function = {"name": str(item.get("name", "")), "arguments": str(item.get("arguments") or "")}
            calls.append({"id": item.get("call_id"), "type": "function", "function": function})
    return "".join(texts), calls


def _part_text(part: Any) -> str:
    if not isinstance(part, dict):
        return ""
    value = part.get("text") if part.get("type") == "output_text" else part.get("refusal")
    return value if isinstance(value, str) else ""


def finish_reason(response: Mapping[str, Any], called: bool) -> FinishReason:
    if response.get("status") == "incomplete":
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        return _INCOMPLETE.get(str(reason), "stop")
    return "tool_calls" if called else "stop"


def usage_of(raw: Any) -> Usage | None:
    if not isinstance(raw, Mapping):
        return None
    cached = raw.get("input_tokens_details")
    reasoning = raw.get("output_tokens_details")
    return Usage(
        prompt_tokens=int(raw.get("input_tokens") or 0),
        completion_tokens=int(raw.get("output_tokens") or 0),
        cached_tokens=int(cached.get("cached_tokens") or 0) if isinstance(cached, Mapping) else 0,
        reasoning_tokens=int(reasoning.get("reasoning_tokens") or 0) if isinstance(reasoning, Mapping) else 0,
    )


def failure(error: Any, deployment_id: str) -> LLMServeError:
    """A failed response or an ``error`` event as the chat path would raise it: the upstream's fault
    (retryable, another deployment may answer) or the request's (returned to the client at once)."""
    error = error if isinstance(error, Mapping) else {}
    code = error.get("code")
    message = str(error.get("message") or "the response failed")
    if code == "context_length_exceeded":  # context_window_fallbacks must see it as the chat path's
        return ContextLengthExceeded(message, param="input")
    if code is None or code in _RETRYABLE_CODES:
        return UpstreamError(
            f"{deployment_id}: the upstream response failed ({code or 'no code'}): {message}",
            kind="status",
            retryable=True,
            deployment=deployment_id,
        )
    return InvalidRequest(message, code=str(code))


def protocol_error(deployment_id: str, what: str) -> UpstreamError:
    return UpstreamError(
        f"{deployment_id}: {what}", kind="protocol", retryable=True, deployment=deployment_id
    )
