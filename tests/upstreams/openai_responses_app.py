"""An OpenAI upstream that also speaks the Responses API natively (``POST /v1/responses``).

Everything ``OpenAIUpstream`` answers, plus ``/v1/responses``, plain (a ``Response`` object) and
streamed (the typed events, each with ``event:`` and ``sequence_number``), in the wire shapes of the
official SDK's ``openai.types.responses`` (tests validate them against those types):

- the reply is ``"[<name>] echo: <last user text>"``; after a ``function_call_output`` it is
  ``"[<name>] tool said: <output>"``; offered function tools (``tool_choice`` not ``"none"``) it
  calls the named or first one with ``{"text": <last user text>}``;
- ``max_output_tokens`` cuts the reply in words (``status: "incomplete"``, reason
  ``max_output_tokens``); with ``reasoning`` a ``reasoning`` item comes first and 3 reasoning tokens
  are counted;
- usage: an input token per word plus 4 an item; ``cached_tokens`` are those of every item but the
  last (a prefix cache's share of a growing chain);
- ``fail_responses = n`` makes the next ``n`` answers fail after a 200: a ``response.failed`` event
  (streamed) or a ``status: "failed"`` body, error ``server_error``.
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson

from tests.upstreams.openai_app import CREATED, OpenAIUpstream, error_body
from tests.upstreams.server import Reply, StreamReply, UpstreamRequest, UpstreamServer

REASONING_TOKENS = 3
Item = dict[str, Any]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _item_text(item: Item) -> str:
    if item.get("type") == "function_call":
        return f"{item.get('name', '')} {item.get('arguments', '')}"
    if item.get("type") == "function_call_output":
        return str(item.get("output", ""))
    return _text(item.get("content"))


def _tokens(text: str) -> int:
    return len(text.split())


class OpenAIResponsesUpstream(OpenAIUpstream):
    """``UpstreamServer(OpenAIResponsesUpstream(name="a"))``; see the module docstring."""

    def __init__(self, name: str = "a", **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.fail_responses = 0
        self._response_ids = itertools.count(1)

    def __call__(self, request: UpstreamRequest) -> Reply | StreamReply:
        if request.path != "/v1/responses" or request.method != "POST":
            return super().__call__(request)
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return Reply(
                401, error_body("Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
            )
        body = request.json()
        raw = body.get("input") if isinstance(body, dict) else None
        items = [{"role": "user", "content": raw}] if isinstance(raw, str) else raw
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
            return Reply(400, error_body("input must not be empty", "invalid_request_error", None, "input"))
        if body.get("previous_response_id") is not None:  # nothing is stored here to continue from
            message = f"Previous response with id '{body['previous_response_id']}' not found."
            return Reply(
                400,
                error_body(message, "invalid_request_error", "previous_response_not_found", "input"),
            )
        response = self._response(body, items)
        if self.fail_responses > 0:
            self.fail_responses -= 1
            error = {"code": "server_error", "message": "The model had a problem answering."}
            response.update(status="failed", output=[], error=error, usage=None)
        return self._events(response) if body.get("stream") else Reply(200, response)

    # -- the answer ----------------------------------------------------------------------------
    def _response(self, body: dict[str, Any], items: list[Item]) -> dict[str, Any]:
        number = next(self._response_ids)
        output: list[Item] = []
        if body.get("reasoning"):
            output.append({"type": "reasoning", "id": f"rs_{self.name}_{number}", "summary": []})
        last = items[-1]
        user = next((_text(i.get("content")) for i in reversed(items) if i.get("role") == "user"), "")
        tool = None if last.get("type") == "function_call_output" else self._tool(body)
        status, incomplete = "completed", None
        if tool is not None:
            arguments = orjson.dumps({"text": user}).decode()
            output.append(
                {
                    "type": "function_call",
                    "id": f"fc_{self.name}_{number}",
                    "call_id": f"call_{self.name}_{number}",
                    "name": tool,
                    "arguments": arguments,
                    "status": "completed",
                }
            )
        else:
            said = f"tool said: {last.get('output')}" if last.get("type") == "function_call_output" else None
            reply = f"[{self.name}] {said or f'echo: {user}'}"
            words, limit = reply.split(" "), body.get("max_output_tokens")
            if isinstance(limit, int) and len(words) > limit:
                reply, status, incomplete = " ".join(words[:limit]), "incomplete", "max_output_tokens"
            output.append(_message(f"msg_{self.name}_{number}", reply))
        return {
            "id": f"resp_{self.name}_{number}",
            "object": "response",
            "created_at": CREATED,
            "status": status,
            "completed_at": CREATED + 1,
            "error": None,
            "incomplete_details": None if incomplete is None else {"reason": incomplete},
            "instructions": body.get("instructions"),
            "metadata": body.get("metadata") or {},
            "model": self.model,
            "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": None,
            "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "top_p": body.get("top_p", 1.0),
            "truncation": body.get("truncation", "disabled"),
            "usage": self._usage(items, output, bool(body.get("reasoning"))),
        }

    @staticmethod
    def _tool(body: dict[str, Any]) -> str | None:
        tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type") == "function"]
        choice = body.get("tool_choice")
        if not tools or choice == "none":
            return None
        if isinstance(choice, dict) and choice.get("name"):
            return str(choice["name"])
        return str(tools[0].get("name"))

    @staticmethod
    def _usage(items: list[Item], output: list[Item], reasoning: bool) -> dict[str, Any]:
        per_item = [_tokens(_item_text(item)) + 4 for item in items]
        spoken = sum(_tokens(_item_text(item)) for item in output if item["type"] != "reasoning")
        thought = REASONING_TOKENS if reasoning else 0
        return {
            "input_tokens": sum(per_item),
            "input_tokens_details": {"cached_tokens": sum(per_item[:-1]), "cache_write_tokens": 0},
            "output_tokens": spoken + thought,
            "output_tokens_details": {"reasoning_tokens": thought},
            "total_tokens": sum(per_item) + spoken + thought,
        }

    # -- the stream ----------------------------------------------------------------------------
    def _events(self, response: dict[str, Any]) -> StreamReply:
        events: list[tuple[str | None, Any]] = []

        def say(kind: str, **fields: Any) -> None:
            events.append((kind, {"type": kind, **fields, "sequence_number": len(events)}))

        started = {**response, "status": "in_progress", "output": [], "usage": None, "completed_at": None}
        say("response.created", response=started)
        say("response.in_progress", response=started)
        if response["status"] == "failed":
            say("response.failed", response=response)
            return StreamReply(events)
        for position, item in enumerate(response["output"]):
            if item["type"] == "message":
                self._message_events(say, position, item)
            elif item["type"] == "function_call":
                _call_events(say, position, item)
            else:
                say("response.output_item.added", output_index=position, item=item)
                say("response.output_item.done", output_index=position, item=item)
        say(f"response.{response['status']}", response=response)
        return StreamReply(events)

    def _message_events(self, say: Any, position: int, item: Item) -> None:
        where = {"item_id": item["id"], "output_index": position, "content_index": 0}
        text = item["content"][0]["text"]
        say(
            "response.output_item.added",
            output_index=position,
            item={**item, "status": "in_progress", "content": []},
        )
        empty = {"type": "output_text", "text": "", "annotations": []}
        say("response.content_part.added", **where, part=empty)
        for piece in self._pieces(text):
            say("response.output_text.delta", **where, delta=piece, logprobs=[])
        say("response.output_text.done", **where, text=text, logprobs=[])
        say("response.content_part.done", **where, part=item["content"][0])
        say("response.output_item.done", output_index=position, item=item)


def _message(item_id: str, text: str) -> Item:
    return {
        "type": "message",
        "id": item_id,
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def _call_events(say: Any, position: int, item: Item) -> None:
    arguments = item["arguments"]
    say(
        "response.output_item.added",
        output_index=position,
        item={**item, "arguments": "", "status": "in_progress"},
    )
    half = len(arguments) // 2  # two deltas: a client must join them
    for piece in (arguments[:half], arguments[half:]):
        say("response.function_call_arguments.delta", item_id=item["id"], output_index=position, delta=piece)
    say(
        "response.function_call_arguments.done",
        item_id=item["id"],
        output_index=position,
        arguments=arguments,
    )
    say("response.output_item.done", output_index=position, item=item)


def openai_responses_server(name: str = "a", **kwargs: Any) -> UpstreamServer:
    """An ``UpstreamServer`` speaking OpenAI, the Responses API included (not started; use ``with``)."""
    return UpstreamServer(OpenAIResponsesUpstream(name, **kwargs))
