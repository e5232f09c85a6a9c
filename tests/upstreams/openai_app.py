"""A deterministic OpenAI-compatible upstream for ``UpstreamServer``.

It answers ``/v1/chat/completions``, ``/v1/completions`` (both plain and streamed), ``/v1/embeddings``
and ``/v1/models`` the way OpenAI does, with text a test can predict:

- a chat reply is ``"[<name>] echo: <last user message>"`` (``#<i>`` appended for choice ``i > 0``),
  so tests can tell answers, choices and upstreams apart; after a tool result it is
  ``"[<name>] tool said: <result>"``;
- with ``tools`` (and ``tool_choice`` not ``"none"``) it calls the named or first tool with
  ``{"text": <last user message>}`` and finishes with ``tool_calls``;
- a token is a whitespace-separated word: ``max_tokens`` cuts the reply (``length``), ``stop`` cuts it
  at the first stop string, and a prompt plus ``max_tokens`` over ``context_tokens`` is OpenAI's 400
  ``context_length_exceeded``;
- embeddings are 8 floats derived from a hash of the text, listed in *reverse* order of input (each
  with its ``index``, which the protocol allows), so a client that ignores ``index`` is caught.
"""

from __future__ import annotations

import hashlib
import itertools
import struct
from collections.abc import Sequence
from typing import Any

import orjson

from tests.upstreams.server import Reply, StreamReply, UpstreamRequest, UpstreamServer

EMBEDDING_DIMENSIONS = 8
CREATED = 1_700_000_000


def embedding_for(text: str) -> list[float]:
    """The vector this upstream returns for ``text``."""
    digest = hashlib.sha256(text.encode()).digest()
    raw = struct.unpack(f">{EMBEDDING_DIMENSIONS}H", digest[: 2 * EMBEDDING_DIMENSIONS])
    return [round(value / 65535 * 2 - 1, 6) for value in raw]


def error_body(message: str, kind: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _text_of(content: Any) -> str:
    """A message's content as text (a string, or OpenAI's list of content parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _tokens(text: str) -> int:
    return len(text.split())


class OpenAIUpstream:
    """``UpstreamServer(OpenAIUpstream(name="a"))``; see the module docstring for what it answers."""

    def __init__(
        self,
        name: str = "a",
        api_key: str | None = None,
        context_tokens: int = 4096,
        words_per_event: int = 1,
        model: str = "gpt-test",
    ) -> None:
        self.name = name
        self.api_key = api_key
        self.context_tokens = context_tokens
        self.words_per_event = max(1, words_per_event)
        self.model = model
        self._ids = itertools.count(1)

    def __call__(self, request: UpstreamRequest) -> Reply | StreamReply:
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return Reply(
                401, error_body("Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
            )
        if request.method == "GET" and request.path == "/v1/models":
            model = {"id": self.model, "object": "model", "created": CREATED, "owned_by": self.name}
            return Reply(200, {"object": "list", "data": [model]})
        routes = {
            "/v1/chat/completions": self._chat,
            "/v1/completions": self._text,
            "/v1/embeddings": self._embeddings,
        }
        route = routes.get(request.path)
        if route is None or request.method != "POST":
            return Reply(
                404,
                error_body(f"Unknown route {request.method} {request.path}", "invalid_request_error", None),
            )
        try:
            body = request.json()
        except orjson.JSONDecodeError:
            return Reply(400, error_body("The body is not valid JSON.", "invalid_request_error", None))
        if not isinstance(body, dict):
            return Reply(400, error_body("The body must be a JSON object.", "invalid_request_error", None))
        return route(body)

    # -- chat ----------------------------------------------------------------------------------
    def _chat(self, body: dict[str, Any]) -> Reply | StreamReply:
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        if not messages:
            return Reply(
                400, error_body("messages must not be empty", "invalid_request_error", None, "messages")
            )
        prompt_tokens = sum(_tokens(_text_of(m.get("content"))) + 4 for m in messages)
        if (refused := self._check_context(prompt_tokens, body)) is not None:
            return refused
        last = messages[-1]
        user = next((_text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
        # After a tool result a model answers in words; otherwise, offered tools, it calls one.
        tool = None if last.get("role") == "tool" else self._tool_to_call(body)
        completion_id = f"chatcmpl-{self.name}-{next(self._ids)}"
        answers: list[tuple[str, str, list[dict[str, Any]]]] = []  # text, finish, tool calls
        for index in range(int(body.get("n") or 1)):
            if tool is not None:
                call = {
                    "id": f"call_{self.name}_{index}",
                    "type": "function",
                    "function": {"name": tool, "arguments": orjson.dumps({"text": user}).decode()},
                }
                answers.append(("", "tool_calls", [call]))
                continue
            if last.get("role") == "tool":
                reply = f"[{self.name}] tool said: {_text_of(last.get('content'))}"
            else:
                reply = f"[{self.name}] echo: {user}"
            text, finish = self._shape(reply + (f" #{index}" if index else ""), body)
            answers.append((text, finish, []))
        completion_tokens = sum(_tokens(text) for text, _, _ in answers)
        usage = _usage_body(prompt_tokens, completion_tokens)
        if body.get("stream"):
            return self._chat_stream(completion_id, answers, usage, body)
        choices = []
        for index, (text, finish, calls) in enumerate(answers):
            message: dict[str, Any] = {"role": "assistant", "content": text if not calls else None}
            if calls:
                message["tool_calls"] = calls
            choices.append({"index": index, "message": message, "finish_reason": finish, "logprobs": None})
        return Reply(200, self._envelope(completion_id, "chat.completion", choices, usage))

    def _chat_stream(
        self,
        completion_id: str,
        answers: list[tuple[str, str, list[dict[str, Any]]]],
        usage: dict[str, int],
        body: dict[str, Any],
    ) -> StreamReply:
        def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            choice = {"index": index, "delta": delta, "finish_reason": finish, "logprobs": None}
            return self._envelope(completion_id, "chat.completion.chunk", [choice])

        events: list[tuple[str | None, Any]] = []
        for index, (text, finish, calls) in enumerate(answers):
            events.append((None, chunk(index, {"role": "assistant", "content": ""})))
            for position, call in enumerate(calls):
                head = {
                    **call,
                    "index": position,
                    "function": {"name": call["function"]["name"], "arguments": ""},
                }
                events.append((None, chunk(index, {"tool_calls": [head]})))
                arguments = {"index": position, "function": {"arguments": call["function"]["arguments"]}}
                events.append((None, chunk(index, {"tool_calls": [arguments]})))
            events.extend((None, chunk(index, {"content": piece})) for piece in self._pieces(text))
            events.append((None, chunk(index, {}, finish)))
        return self._finish_stream(events, completion_id, "chat.completion.chunk", usage, body)

    # -- legacy completions --------------------------------------------------------------------
    def _text(self, body: dict[str, Any]) -> Reply | StreamReply:
        prompt = body.get("prompt")
        prompt = prompt[0] if isinstance(prompt, list) and prompt else prompt
        if not isinstance(prompt, str):
            return Reply(400, error_body("prompt must be a string", "invalid_request_error", None, "prompt"))
        prompt_tokens = _tokens(prompt)
        if (refused := self._check_context(prompt_tokens, body)) is not None:
            return refused
        completion_id = f"cmpl-{self.name}-{next(self._ids)}"
        answers = [
            self._shape(f"[{self.name}] echo: {prompt}" + (f" #{index}" if index else ""), body)
            for index in range(int(body.get("n") or 1))
        ]
        usage = _usage_body(prompt_tokens, sum(_tokens(text) for text, _ in answers))
        if not body.get("stream"):
            choices = [
                {"index": i, "text": text, "finish_reason": finish, "logprobs": None}
                for i, (text, finish) in enumerate(answers)
            ]
            return Reply(200, self._envelope(completion_id, "text_completion", choices, usage))
        events: list[tuple[str | None, Any]] = []
        for index, (text, finish) in enumerate(answers):
            for piece in self._pieces(text):
                choice = {"index": index, "text": piece, "finish_reason": None, "logprobs": None}
                events.append((None, self._envelope(completion_id, "text_completion", [choice])))
            choice = {"index": index, "text": "", "finish_reason": finish, "logprobs": None}
            events.append((None, self._envelope(completion_id, "text_completion", [choice])))
        return self._finish_stream(events, completion_id, "text_completion", usage, body)

    # -- embeddings ----------------------------------------------------------------------------
    def _embeddings(self, body: dict[str, Any]) -> Reply:
        raw = body.get("input")
        inputs = [raw] if isinstance(raw, str) else raw
        if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) for t in inputs):
            return Reply(
                400,
                error_body(
                    "input must be a string or a list of strings", "invalid_request_error", None, "input"
                ),
            )
        data = [
            {"object": "embedding", "index": i, "embedding": embedding_for(text)}
            for i, text in enumerate(inputs)
        ]
        tokens = sum(_tokens(text) for text in inputs)
        return Reply(
            200,
            {
                "object": "list",
                "data": data[::-1],
                "model": body.get("model", self.model),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    # -- shared --------------------------------------------------------------------------------
    def _check_context(self, prompt_tokens: int, body: dict[str, Any]) -> Reply | None:
        completion = int(body.get("max_tokens") or body.get("max_completion_tokens") or 0)
        if prompt_tokens + completion <= self.context_tokens:
            return None
        message = (
            f"This model's maximum context length is {self.context_tokens} tokens. However, you requested "
            f"{prompt_tokens + completion} tokens ({prompt_tokens} in the messages, {completion} in the "
            "completion). Please reduce the length of the messages or completion."
        )
        return Reply(400, error_body(message, "invalid_request_error", "context_length_exceeded", "messages"))

    @staticmethod
    def _tool_to_call(body: dict[str, Any]) -> str | None:
        tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
        choice = body.get("tool_choice")
        if not tools or choice == "none":
            return None
        if isinstance(choice, dict):
            return str(choice.get("function", {}).get("name"))
        return str(tools[0].get("function", {}).get("name"))

    @staticmethod
    def _shape(reply: str, body: dict[str, Any]) -> tuple[str, str]:
        """Applies ``stop`` then ``max_tokens`` (in words) to ``reply``; returns it and its finish reason."""
        stop = body.get("stop")
        stops: Sequence[str] = [stop] if isinstance(stop, str) else stop or []
        cuts = [reply.find(s) for s in stops if s and s in reply]
        if cuts:
            return reply[: min(cuts)], "stop"
        words = reply.split(" ")
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        if isinstance(limit, int) and len(words) > limit:
            return " ".join(words[:limit]), "length"
        return reply, "stop"

    def _pieces(self, text: str) -> list[str]:
        """``text`` split into events of ``words_per_event`` words, spaces kept so pieces join back."""
        words = text.split(" ") if text else []
        step = self.words_per_event
        return [("" if i == 0 else " ") + " ".join(words[i : i + step]) for i in range(0, len(words), step)]

    def _finish_stream(
        self,
        events: list[tuple[str | None, Any]],
        completion_id: str,
        kind: str,
        usage: dict[str, int],
        body: dict[str, Any],
    ) -> StreamReply:
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage"):
            events.append((None, {**self._envelope(completion_id, kind, []), "usage": usage}))
        events.append((None, "[DONE]"))
        return StreamReply(events)

    def _envelope(
        self,
        completion_id: str,
        kind: str,
        choices: list[dict[str, Any]],
        usage: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        envelope: dict[str, Any] = {
            "id": completion_id,
            "object": kind,
            "created": CREATED,
            "model": self.model,
            "system_fingerprint": f"fp_{self.name}",
            "choices": choices,
        }
        if usage is not None:
            envelope["usage"] = usage
        return envelope


def _usage_body(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def openai_server(name: str = "a", **kwargs: Any) -> UpstreamServer:
    """An ``UpstreamServer`` speaking OpenAI as upstream ``name`` (not started; use ``with``)."""
    return UpstreamServer(OpenAIUpstream(name, **kwargs))


def deployment_for(name: str, upstream: UpstreamServer, timeout: float = 10) -> dict[str, Any]:
    """The ``models:`` entry of a group ``name`` served by ``upstream`` (a config file's view of it)."""
    return {
        "name": name,
        "provider": "openai",
        "model": "gpt-test",
        "api_base": f"{upstream.url}/v1",
        "timeout": timeout,
    }
