"""Anthropic's Messages API behind the neutral Provider interface, translated both ways.

Our API speaks OpenAI, so this module maps OpenAI shapes onto Anthropic's and back: system messages
become the top-level ``system``; assistant ``tool_calls`` become ``tool_use`` blocks and ``tool``
messages ``tool_result`` blocks; Anthropic's ``tool_use`` answers come back as OpenAI ``tool_calls``.
A raw prompt (``/v1/completions``) is sent as one user message: the Messages API has no raw mode.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from typing import Any

import orjson

from llmserve.config import ModelDeployment
from llmserve.errors import InvalidRequest, UpstreamError
from llmserve.providers.anthropic_native import counted_tokens, forwarded_headers, native_payload
from llmserve.providers.http import SSEEvent, Timeouts, UpstreamHTTP
from llmserve.types import (
    ChatInput,
    ChatMessage,
    Choice,
    Completion,
    Delta,
    FinishReason,
    GenerationInput,
    GenerationOptions,
    NativeRequest,
    StreamEvent,
    Usage,
)

DEFAULT_API_BASE = "https://api.anthropic.com"
DEFAULT_API_VERSION = "2023-06-01"

FINISH_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# Mid-stream ``error`` events carry no HTTP status; these are the statuses the same errors have as answers.
ERROR_STATUSES = {"overloaded_error": 529, "api_error": 500, "rate_limit_error": 429}
Block = dict[str, Any]


def check_supported(options: GenerationOptions, model: str) -> None:
    """Refuses what the Messages API cannot do, rather than silently answering something else."""
    # n > 1 would mean n full calls (n times the cost and latency); clients asking for it should know.
    if options.n > 1:
        raise InvalidRequest(f"Model '{model}' (Anthropic) supports only n=1", param="n")
    if options.response_format and options.response_format.get("type", "text") != "text":
        raise InvalidRequest(
            f"Model '{model}' (Anthropic) supports only response_format type 'text'", param="response_format"
        )
    if options.logprobs:
        raise InvalidRequest(f"Model '{model}' (Anthropic) does not return logprobs", param="logprobs")
    if options.presence_penalty or options.frequency_penalty:
        param = "presence_penalty" if options.presence_penalty else "frequency_penalty"
        raise InvalidRequest(f"Model '{model}' (Anthropic) does not support {param}", param=param)
    if options.ignore_eos:
        raise InvalidRequest(f"Model '{model}' (Anthropic) does not support ignore_eos", param="ignore_eos")


def tool_use_block(call: dict[str, Any]) -> Block:
    function = call.get("function") or {}
    arguments = function.get("arguments") or "{}"
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) else arguments
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest("tool_calls arguments must be a JSON object", param="messages") from exc
    if not isinstance(parsed, dict):
        raise InvalidRequest("tool_calls arguments must be a JSON object", param="messages")
    return {"type": "tool_use", "id": call.get("id", ""), "name": function.get("name", ""), "input": parsed}


def message_blocks(message: ChatMessage) -> tuple[str, list[Block]]:
    """The Anthropic role and content blocks of one OpenAI message (never an empty text block)."""
    text = [{"type": "text", "text": message.content}] if message.content else []
    if message.role == "tool":
        if not message.tool_call_id:
            raise InvalidRequest("a 'tool' message needs tool_call_id", param="messages")
        result = {"type": "tool_result", "tool_use_id": message.tool_call_id, "content": message.content}
        return "user", [result]
    if message.role == "assistant":
        return "assistant", text + [tool_use_block(call) for call in message.tool_calls]
    if message.role == "user":
        return "user", text
    raise InvalidRequest(f"unsupported message role '{message.role}'", param="messages")


def translate_messages(messages: Sequence[ChatMessage]) -> tuple[str, list[dict[str, Any]]]:
    """System text and alternating user/assistant turns: Anthropic rejects two turns of one role in a row
    (tool results and the user's next words travel in one user turn), so consecutive ones are merged."""
    system = [m.content for m in messages if m.role in ("system", "developer") and m.content]
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role in ("system", "developer"):
            continue
        role, blocks = message_blocks(message)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:  # plain text turns stay plain strings, as people write them
        if len(turn["content"]) == 1 and turn["content"][0]["type"] == "text":
            turn["content"] = turn["content"][0]["text"]
    return "\n\n".join(system), turns


def translate_tools(tools: Sequence[dict[str, Any]]) -> list[Block]:
    translated = []
    for tool in tools:
        function = tool.get("function")
        if tool.get("type", "function") != "function" or not isinstance(function, dict):
            raise InvalidRequest("only function tools are supported", param="tools")
        schema = function.get("parameters") or {"type": "object", "properties": {}}
        entry: Block = {"name": function.get("name", ""), "input_schema": schema}
        if function.get("description"):
            entry["description"] = function["description"]
        translated.append(entry)
    return translated


def translate_tool_choice(choice: str | dict[str, Any]) -> Block:
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if not name:
            raise InvalidRequest("tool_choice names no function", param="tool_choice")
        return {"type": "tool", "name": name}
    mapped = {"auto": "auto", "none": "none", "required": "any"}.get(choice)
    if mapped is None:
        raise InvalidRequest(f"unsupported tool_choice '{choice}'", param="tool_choice")
    return {"type": mapped}


def build_payload(deployment: ModelDeployment, request: GenerationInput, stream: bool) -> dict[str, Any]:
    if (native := native_payload(deployment, request, stream)) is not None:
        return native
    options = request.options
    check_supported(options, deployment.name)
    if isinstance(request, ChatInput):
        system, messages = translate_messages(request.messages)
    else:
        system, messages = "", [{"role": "user", "content": request.prompt}]
    payload: dict[str, Any] = {
        "model": deployment.model,
        "max_tokens": options.max_tokens or deployment.default_max_tokens,  # required by Anthropic
        "messages": messages,
        # OpenAI's range is 0..2, Anthropic's 0..1 (it answers 400 above): hotter than 1 means "as
        # random as it gets", which on Anthropic is 1.
        "temperature": min(max(options.temperature, 0.0), 1.0),
    }
    if system:
        payload["system"] = system
    if options.top_p < 1:
        payload["top_p"] = options.top_p
    if options.top_k > 0:
        payload["top_k"] = options.top_k
    if options.stop:
        payload["stop_sequences"] = list(options.stop)
    if options.tools:
        payload["tools"] = translate_tools(options.tools)
    if options.tool_choice is not None:
        payload["tool_choice"] = translate_tool_choice(options.tool_choice)
    if stream:
        payload["stream"] = True
    return payload  # seed is not sent: Anthropic has none, and OpenAI only promises best effort


def openai_tool_call(block: Block) -> dict[str, Any]:
    arguments = orjson.dumps(block.get("input") or {}).decode()
    return {
        "id": block.get("id", ""),
        "type": "function",
        "function": {"name": block.get("name", ""), "arguments": arguments},
    }


def finish_reason(stop_reason: Any) -> FinishReason:
    return FINISH_REASONS.get(str(stop_reason), "stop")


def protocol_error(deployment: str, what: str) -> UpstreamError:
    return UpstreamError(f"{deployment}: {what}", kind="protocol", retryable=True, deployment=deployment)


def parse_completion(body: Any, deployment: str) -> Completion:
    if not isinstance(body, dict) or not isinstance(body.get("content"), list):
        raise protocol_error(deployment, "the upstream answered without message content")
    blocks = [b for b in body["content"] if isinstance(b, dict)]
    text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
    calls = tuple(openai_tool_call(b) for b in blocks if b.get("type") == "tool_use")
    usage = body.get("usage") or {}
    return Completion(
        choices=[Choice(0, text, finish_reason(body.get("stop_reason")), tool_calls=calls)],
        usage=Usage(int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))),
    )


def stream_error(data: dict[str, Any], deployment: str) -> UpstreamError:
    error = data.get("error") or {}
    kind = str(error.get("type", "api_error"))
    return UpstreamError(
        f"{deployment}: upstream error mid-stream ({kind}): {error.get('message', '')}",
        kind="status",
        retryable=True,
        upstream_status=ERROR_STATUSES.get(kind),
        deployment=deployment,
    )


class StreamTranslator:
    """Turns Messages API stream events into Deltas (choice 0) and, at ``message_stop``, one Usage."""

    def __init__(self, deployment: str) -> None:
        self.deployment = deployment
        self.finished = False
        self.prompt_tokens = self.completion_tokens = 0
        self.tool_index: dict[int, int] = {}  # Anthropic content block index -> OpenAI tool_calls index

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError as exc:
            raise protocol_error(self.deployment, "malformed JSON in the stream") from exc
        if not isinstance(data, dict):
            raise protocol_error(self.deployment, "a stream event is not a JSON object")
        kind = data.get("type") or event.event
        if kind == "message_start":
            usage = (data.get("message") or {}).get("usage") or {}
            self.prompt_tokens = int(usage.get("input_tokens", 0))
            self.completion_tokens = int(usage.get("output_tokens", 0))
        elif kind == "content_block_start":
            return self._block_start(int(data.get("index", 0)), data.get("content_block") or {})
        elif kind == "content_block_delta":
            return self._block_delta(int(data.get("index", 0)), data.get("delta") or {})
        elif kind == "message_delta":
            # output_tokens here is the running total, not an increment.
            self.completion_tokens = int(
                (data.get("usage") or {}).get("output_tokens", self.completion_tokens)
            )
            stop_reason = (data.get("delta") or {}).get("stop_reason")
            return [] if stop_reason is None else [Delta(0, "", finish_reason(stop_reason))]
        elif kind == "message_stop":
            self.finished = True
            return [Usage(self.prompt_tokens, self.completion_tokens)]
        elif kind == "error":
            raise stream_error(data, self.deployment)
        return []  # ping, content_block_stop and event types added later carry nothing we pass on

    def _block_start(self, index: int, block: Block) -> list[StreamEvent]:
        if block.get("type") == "tool_use":
            self.tool_index[index] = len(self.tool_index)
            fragment = {
                "index": self.tool_index[index],
                "id": block.get("id", ""),
                "type": "function",
                "function": {"name": block.get("name", ""), "arguments": ""},
            }
            return [Delta(0, "", tool_calls=(fragment,))]
        text = block.get("text") if block.get("type") == "text" else None
        return [Delta(0, text)] if text else []

    def _block_delta(self, index: int, delta: Block) -> list[StreamEvent]:
        if delta.get("type") == "text_delta" and delta.get("text"):
            return [Delta(0, delta["text"])]
        if delta.get("type") == "input_json_delta" and index in self.tool_index:
            arguments = delta.get("partial_json", "")
            return [
                Delta(
                    0,
                    "",
                    tool_calls=({"index": self.tool_index[index], "function": {"arguments": arguments}},),
                )
            ]
        return []  # thinking and signature deltas are not part of the OpenAI answer


class AnthropicProvider:
    def __init__(self, deployment: ModelDeployment, http: UpstreamHTTP, deployment_id: str) -> None:
        self.name = deployment.name
        self.deployment = deployment
        self.deployment_id = deployment_id
        self._http = http
        # Accept the base with or without the SDK's "/v1" suffix.
        base = (deployment.api_base or DEFAULT_API_BASE).rstrip("/").removesuffix("/v1")
        self._url = f"{base}/v1/messages"
        self._headers = {"anthropic-version": deployment.api_version or DEFAULT_API_VERSION}
        if deployment.api_key is not None:
            self._headers["x-api-key"] = deployment.api_key.get_secret_value()
        d = deployment
        self._timeouts = Timeouts(
            connect=d.connect_timeout,
            total=d.timeout,
            first_token=d.first_token_timeout or d.timeout,
            idle=d.stream_idle_timeout or d.timeout,
        )

    async def complete(self, request: GenerationInput) -> Completion:
        native = native_payload(self.deployment, request, stream=False)
        payload = native if native is not None else build_payload(self.deployment, request, stream=False)
        headers = {**self._headers, **forwarded_headers(request)}
        body = await self._http.post_json(
            self._url, payload, headers, timeouts=self._timeouts, deployment=self.deployment_id
        )
        completion = parse_completion(body, self.deployment_id)
        return completion if native is None else dataclasses.replace(completion, native=body)

    async def stream(self, request: GenerationInput) -> AsyncIterator[StreamEvent]:
        payload = build_payload(self.deployment, request, stream=True)
        # aclosing makes leaving early (a client's cancel) close the upstream connection at once
        # rather than at garbage collection.
        headers = {**self._headers, **forwarded_headers(request)}
        events = self._http.stream_sse(
            self._url, payload, headers, timeouts=self._timeouts, deployment=self.deployment_id
        )
        translator = StreamTranslator(self.deployment_id)
        async with aclosing(events):
            async for event in events:
                for item in translator.feed(event):
                    yield item
                if translator.finished:
                    return
        raise protocol_error(self.deployment_id, "stream ended early (no message_stop)")

    async def count_native(self, native: NativeRequest) -> int:
        """Anthropic's own count of a client's ``count_tokens`` body (exact, where ``count_tokens``
        below can only estimate)."""
        payload, headers = {**native.body, "model": self.deployment.model}, {**self._headers}
        headers.update(forwarded_headers(native))
        body = await self._http.post_json(
            f"{self._url}/count_tokens",
            payload,
            headers,
            timeouts=self._timeouts,
            deployment=self.deployment_id,
        )
        return counted_tokens(body, self.deployment_id)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        raise InvalidRequest(f"Model '{self.name}' (Anthropic) has no embeddings API", param="model")

    async def count_tokens(self, request: GenerationInput) -> int:
        """An estimate for routing and limits only (Anthropic's tokenizer is not public): about four
        characters a token, plus four tokens of framing per message."""
        if isinstance(request, ChatInput):
            texts = [
                m.content + "".join(str(c.get("function", "")) for c in m.tool_calls)
                for m in request.messages
            ]
        else:
            texts = [request.prompt]
        return sum(math.ceil(len(text) / 4) + 4 for text in texts)

    async def close(self) -> None:
        """Nothing to close: the HTTP pool is shared and closed by the app."""
