"""The provider for any OpenAI-compatible upstream: OpenAI, vLLM, Ollama, llama.cpp, DeepSeek, ...

Only wire conversions live here; transport, timeouts and the meaning of HTTP failures are
``UpstreamHTTP``'s. Fields a request leaves at their defaults are not sent, so servers that implement
only part of the protocol (``n``, penalties, ``logprobs``) still answer plain requests.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

import orjson

from llmserve.config import ModelDeployment
from llmserve.errors import UpstreamError
from llmserve.providers import openai_responses_native as responses_native
from llmserve.providers.http import Timeouts, UpstreamHTTP, upstream_message
from llmserve.types import (
    ChatInput,
    ChatMessage,
    Choice,
    Completion,
    Delta,
    FinishReason,
    GenerationInput,
    GenerationOptions,
    StreamEvent,
    Usage,
)

# Upstream finish reasons we know, mapped onto ours; anything else (e.g. TGI's "eos_token") is "stop".
_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
# Token estimate for remote models, whose tokenizer we do not have: ~4 characters per token
# (OpenAI's rule of thumb for English) plus the few tokens each chat message costs in framing.
_CHARS_PER_TOKEN = 4
_TOKENS_PER_MESSAGE = 4


class OpenAIProvider:
    def __init__(self, deployment: ModelDeployment, http: UpstreamHTTP, deployment_id: str) -> None:
        if not deployment.api_base:
            raise ValueError(f"deployment {deployment_id} needs api_base")
        self.name = deployment.name
        self.deployment = deployment
        self.deployment_id = deployment_id
        self._http = http
        self._base = deployment.api_base.rstrip("/")
        self._headers: dict[str, str] = {}
        if deployment.api_key is not None:
            self._headers["authorization"] = f"Bearer {deployment.api_key.get_secret_value()}"
        self._timeouts = Timeouts(
            connect=deployment.connect_timeout,
            total=deployment.timeout,
            first_token=deployment.first_token_timeout or deployment.timeout,
            idle=deployment.stream_idle_timeout or deployment.timeout,
        )

    async def complete(self, request: GenerationInput) -> Completion:
        if (native := responses_native.native_payload(self.deployment, request, stream=False)) is not None:
            return await responses_native.complete(self._native(), native, lambda: self.count_tokens(request))
        url, payload = self._request(request)
        body = await self._http.post_json(
            url, payload, self._headers, timeouts=self._timeouts, deployment=self.deployment_id
        )
        choices = body.get("choices") if isinstance(body, dict) else None
        if not isinstance(choices, list):
            raise self._protocol_error("the answer has no choices")
        parsed = [_choice(position, raw) for position, raw in enumerate(choices)]
        usage = _usage(body.get("usage"))
        if usage is None:  # an upstream that reports no usage: estimate, and say so
            completion_chars = sum(len(choice.text) for choice in parsed)
            usage = Usage(await self.count_tokens(request), -(-completion_chars // 4), estimated=True)
        return Completion(choices=parsed, usage=usage)

    async def stream(self, request: GenerationInput) -> AsyncGenerator[StreamEvent, None]:
        if (native := responses_native.native_payload(self.deployment, request, stream=True)) is not None:
            async for piece in responses_native.stream(
                self._native(), native, lambda: self.count_tokens(request)
            ):
                yield piece
            return
        url, payload = self._request(request)
        payload["stream"] = True
        payload["stream_options"] = {"include_usage": True}
        usage: Usage | None = None
        content_deltas = 0
        started: set[int] = set()
        finished: set[int] = set()
        events = self._http.stream_sse(
            url, payload, self._headers, timeouts=self._timeouts, deployment=self.deployment_id
        )
        try:
            async for event in events:
                if event.data.strip() == "[DONE]":
                    break
                chunk = self._decode(event.data)
                usage = _usage(chunk.get("usage")) or usage
                for delta in _deltas(chunk.get("choices")):
                    started.add(delta.index)
                    content_deltas += bool(delta.text)
                    if delta.finish_reason is not None:
                        finished.add(delta.index)
                    yield delta
            else:
                # No [DONE]: acceptable only when every choice that started also finished.
                if not finished or started - finished:
                    raise self._protocol_error("the stream ended early")
        finally:
            # When our caller stops early, the upstream connection must close now, not at GC time:
            # that is how a client's cancel reaches the upstream.
            if isinstance(events, AsyncGenerator):
                await events.aclose()
        # Upstreams that ignore stream_options send no usage: the prompt is then estimated like
        # count_tokens and each content delta counts as one token (close for servers sending token
        # deltas); the Usage says it is an estimate.
        yield usage or Usage(await self.count_tokens(request), content_deltas, estimated=True)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        payload = {"model": self.deployment.model, "input": list(texts)}
        body = await self._http.post_json(
            f"{self._base}/embeddings",
            payload,
            self._headers,
            timeouts=self._timeouts,
            deployment=self.deployment_id,
        )
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or len(data) != len(texts):
            raise self._protocol_error("the embeddings answer does not have one vector per input")
        try:
            ordered = sorted(data, key=lambda item: int(item.get("index", 0)))
            return [[float(x) for x in item["embedding"]] for item in ordered]
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise self._protocol_error("the embeddings answer is malformed") from exc

    async def count_tokens(self, request: GenerationInput) -> int:
        """An estimate (we have no tokenizer for a remote model), used only for routing and limits."""
        if isinstance(request, ChatInput):
            chars = sum(len(m.content) + len(_json(m.tool_calls)) for m in request.messages)
            framing = _TOKENS_PER_MESSAGE * len(request.messages)
        else:
            chars, framing = len(request.prompt), 0
        if request.options.tools:
            chars += len(_json(request.options.tools))
        return math.ceil(chars / _CHARS_PER_TOKEN) + framing

    async def close(self) -> None:
        """Nothing to release: the shared ``UpstreamHTTP`` is closed by the app."""

    # -- wire conversions ----------------------------------------------------------------------
    def _native(self) -> responses_native.NativeCall:
        """The upstream's own Responses API (deployments with ``responses_api: native``)."""
        url = f"{self._base}/responses"
        return responses_native.NativeCall(self._http, url, self._headers, self._timeouts, self.deployment_id)

    def _request(self, request: GenerationInput) -> tuple[str, dict[str, Any]]:
        payload: dict[str, Any] = {"model": self.deployment.model}
        if isinstance(request, ChatInput):
            url = f"{self._base}/chat/completions"
            payload["messages"] = [_message(m) for m in request.messages]
        else:
            url = f"{self._base}/completions"
            payload["prompt"] = request.prompt
        payload.update(_sampling_fields(request.options))
        payload.update(_tool_fields(request.options, chat=isinstance(request, ChatInput)))
        return url, payload

    def _decode(self, data: str) -> dict[str, Any]:
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise self._protocol_error("the stream carried malformed JSON") from exc
        if not isinstance(chunk, dict):
            raise self._protocol_error("a stream event is not a JSON object")
        if chunk.get("error") is not None:
            message, _ = upstream_message(data.encode())
            raise UpstreamError(
                f"{self.deployment_id}: the upstream failed mid-stream: {message}",
                kind="status",
                retryable=True,
                deployment=self.deployment_id,
            )
        return chunk

    def _protocol_error(self, what: str) -> UpstreamError:
        return UpstreamError(
            f"{self.deployment_id}: {what}", kind="protocol", retryable=True, deployment=self.deployment_id
        )


def _sampling_fields(options: GenerationOptions) -> dict[str, Any]:
    """How to sample; what is left at its default is not sent (see the module docstring)."""
    fields: dict[str, Any] = {}
    if options.max_tokens is not None:
        fields["max_tokens"] = options.max_tokens
    fields["temperature"] = options.temperature
    fields["top_p"] = options.top_p
    if options.n != 1:
        fields["n"] = options.n  # llama.cpp refuses any n, even 1
    if options.stop:
        fields["stop"] = list(options.stop)
    if options.seed is not None:
        fields["seed"] = options.seed
    if options.presence_penalty:
        fields["presence_penalty"] = options.presence_penalty
    if options.frequency_penalty:
        fields["frequency_penalty"] = options.frequency_penalty
    return fields


def _tool_fields(options: GenerationOptions, *, chat: bool) -> dict[str, Any]:
    """Tools, the answer's format and logprobs, passed through when the request asks for them."""
    fields: dict[str, Any] = {}
    if options.tools:
        fields["tools"] = list(options.tools)
    if options.tool_choice is not None:
        fields["tool_choice"] = options.tool_choice
    if options.response_format is not None:
        fields["response_format"] = options.response_format
    if options.logprobs:
        # Chat takes a flag; the legacy completions API takes how many alternatives to list.
        fields["logprobs"] = True if chat else 1
    return fields


def _message(message: ChatMessage) -> dict[str, Any]:
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        wire["tool_calls"] = list(message.tool_calls)
        if not message.content:
            wire["content"] = None  # OpenAI's shape for an assistant turn that only calls tools
    if message.tool_call_id is not None:
        wire["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        wire["name"] = message.name
    return wire


def _finish(value: object) -> FinishReason:
    return _FINISH_REASONS.get(value, "stop") if isinstance(value, str) else "stop"


def _choice(position: int, raw: Any) -> Choice:
    if not isinstance(raw, dict):
        return Choice(position, "", "stop")
    message = raw.get("message")
    if isinstance(message, dict):  # chat
        text, tool_calls = message.get("content"), message.get("tool_calls")
    else:  # legacy completions
        text, tool_calls = raw.get("text"), None
    return Choice(
        index=int(raw.get("index", position)),
        text=text if isinstance(text, str) else "",
        finish_reason=_finish(raw.get("finish_reason")),
        tool_calls=tuple(tool_calls) if isinstance(tool_calls, list) else (),
    )


def _deltas(choices: Any) -> list[Delta]:
    """The pieces of one chunk worth passing on; role-only and empty deltas are dropped."""
    deltas: list[Delta] = []
    for position, raw in enumerate(choices if isinstance(choices, list) else ()):
        if not isinstance(raw, dict):
            continue
        delta = raw.get("delta")
        if isinstance(delta, dict):  # chat
            text, tool_calls = delta.get("content"), delta.get("tool_calls")
        else:  # legacy completions
            text, tool_calls = raw.get("text"), None
        raw_finish = raw.get("finish_reason")
        finish = None if raw_finish is None else _finish(raw_finish)
        calls = tuple(tool_calls) if isinstance(tool_calls, list) else ()
        text = text if isinstance(text, str) else ""
        if text or calls or finish is not None:
            deltas.append(Delta(int(raw.get("index", position)), text, finish, calls))
    return deltas


def _usage(raw: Any) -> Usage | None:
    if not isinstance(raw, Mapping):
        return None
    return Usage(
        prompt_tokens=int(raw.get("prompt_tokens") or 0),
        completion_tokens=int(raw.get("completion_tokens") or 0),
    )


def _json(value: Any) -> str:
    return orjson.dumps(value).decode() if value else ""
