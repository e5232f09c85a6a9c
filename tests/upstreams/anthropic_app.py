"""A deterministic Anthropic Messages API (``POST /v1/messages``) for ``UpstreamServer``.

It answers ``"<name>: <last user text>"`` cut to ``max_tokens`` words (one word is one token here),
or, when the request offers tools, a ``tool_use`` of the first tool; a conversation that ends with a
tool result gets ``"<name>: <the result>"``. Streams follow the real event sequence, ping included.
"""

from __future__ import annotations

from typing import Any

import orjson

from tests.upstreams.server import Reply, StreamReply, UpstreamRequest, UpstreamServer

Event = tuple[str | None, Any]


def error_reply(status: int, kind: str, message: str) -> Reply:
    return Reply(status, {"type": "error", "error": {"type": kind, "message": message}})


def block_text(content: Any) -> str:
    """The text of a message's (or the system's) content: a string, or its text (and tool result) blocks."""
    if isinstance(content, str):
        return content
    parts = []
    for block in content or []:
        if block.get("type") == "text":
            parts.append(block["text"])
        elif block.get("type") == "tool_result":
            parts.append(block_text(block.get("content")))
    return " ".join(parts)


def ends_with_tool_result(messages: list[dict[str, Any]]) -> bool:
    content = messages[-1].get("content") if messages else None
    return isinstance(content, list) and any(b.get("type") == "tool_result" for b in content)


class AnthropicUpstream:
    """Set ``stream_error_after`` to send an ``overloaded_error`` event after that many stream events."""

    def __init__(
        self, name: str = "claude-a", api_key: str | None = None, context_tokens: int = 4096
    ) -> None:
        self.name = name
        self.api_key = api_key
        self.context_tokens = context_tokens
        self.stream_error_after: int | None = None

    def __call__(self, request: UpstreamRequest) -> Reply | StreamReply:
        if request.method != "POST" or request.path not in ("/v1/messages", "/v1/messages/count_tokens"):
            return error_reply(404, "not_found_error", f"no route {request.method} {request.path}")
        if self.api_key is not None and request.headers.get("x-api-key") != self.api_key:
            return error_reply(401, "authentication_error", "invalid x-api-key")
        if "anthropic-version" not in request.headers:
            return error_reply(400, "invalid_request_error", "anthropic-version: header is required")
        body = request.json()
        if request.path == "/v1/messages/count_tokens":  # a tool definition counts as its JSON's words
            tools = len(orjson.dumps(body["tools"]).decode().split()) if body.get("tools") else 0
            return Reply(200, {"input_tokens": self._prompt_tokens(body) + tools})
        if not isinstance(body.get("max_tokens"), int):
            return error_reply(400, "invalid_request_error", "max_tokens: Field required")
        prompt_tokens = self._prompt_tokens(body)
        if prompt_tokens > self.context_tokens:
            too_long = f"prompt is too long: {prompt_tokens} tokens > {self.context_tokens} maximum"
            return error_reply(400, "invalid_request_error", too_long)
        content, stop_reason, stop_sequence = self._answer(body)
        output_tokens = sum(len(b["text"].split()) if b["type"] == "text" else 1 for b in content)
        message = {
            "id": f"msg_{len(body['messages'])}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", self.name),
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": {"input_tokens": prompt_tokens, "output_tokens": output_tokens},
        }
        if body.get("stream"):
            return StreamReply(events=self._events(message))
        return Reply(200, message)

    @staticmethod
    def _prompt_tokens(body: dict[str, Any]) -> int:
        texts = [block_text(body.get("system", ""))] + [
            block_text(m.get("content")) for m in body["messages"]
        ]
        return sum(len(text.split()) for text in texts)

    def _answer(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str, str | None]:
        messages = body["messages"]
        tools = body.get("tools") or []
        wants_text = (body.get("tool_choice") or {}).get("type") == "none"
        last_user = next((m for m in reversed(messages) if m["role"] == "user"), {"content": ""})
        text = block_text(last_user["content"])
        if tools and not wants_text and not ends_with_tool_result(messages):
            call = {"type": "tool_use", "id": "toolu_01", "name": tools[0]["name"], "input": {"query": text}}
            return [call], "tool_use", None
        words = f"{self.name}: {text}".split()
        reply, stop_reason, stop_sequence = " ".join(words[: body["max_tokens"]]), "end_turn", None
        if len(words) > body["max_tokens"]:
            stop_reason = "max_tokens"
        for sequence in body.get("stop_sequences") or []:
            if sequence in reply:
                reply, stop_reason, stop_sequence = reply.split(sequence)[0], "stop_sequence", sequence
        return [{"type": "text", "text": reply}], stop_reason, stop_sequence

    def _events(self, message: dict[str, Any]) -> list[Event]:
        start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
        start["usage"] = {"input_tokens": message["usage"]["input_tokens"], "output_tokens": 1}
        events: list[Event] = [("message_start", {"type": "message_start", "message": start})]
        for index, block in enumerate(message["content"]):
            events.extend(_block_events(index, block))
            if index == 0:
                events.insert(2, ("ping", {"type": "ping"}))  # as Anthropic does, after the first block start
        delta = {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]}
        usage = {"output_tokens": message["usage"]["output_tokens"]}
        events.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
        events.append(("message_stop", {"type": "message_stop"}))
        if self.stream_error_after is not None:
            error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
            events = [*events[: self.stream_error_after], ("error", error)]
        return events


def _block_events(index: int, block: dict[str, Any]) -> list[Event]:
    if block["type"] == "tool_use":
        arguments = orjson.dumps(block["input"]).decode()
        pieces = [arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]]
        deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in pieces]
        start_block = {**block, "input": {}}
    else:
        words = block["text"].split(" ")
        deltas = [{"type": "text_delta", "text": w if i == 0 else f" {w}"} for i, w in enumerate(words)]
        start_block = {"type": "text", "text": ""}
    events: list[Event] = [
        ("content_block_start", {"type": "content_block_start", "index": index, "content_block": start_block})
    ]
    events += [
        ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}) for d in deltas
    ]
    events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    return events


def anthropic_server(name: str = "claude-a", **kwargs: Any) -> UpstreamServer:
    """An ``UpstreamServer`` speaking the Messages API (not started: use it as a context manager)."""
    return UpstreamServer(AnthropicUpstream(name, **kwargs))
