"""POST /v1/responses with ``stream: true``: the pipeline's deltas as the Responses API's typed events.

In order: ``response.created``, ``response.in_progress``; for the text, ``response.output_item.added``
(a message), ``response.content_part.added``, ``response.output_text.delta``…,
``response.output_text.done``, ``response.content_part.done``, ``response.output_item.done``; for each
tool call, ``response.output_item.added`` (a function_call), ``response.function_call_arguments.delta``…,
``.done``, ``response.output_item.done``; last ``response.completed`` (or ``response.incomplete`` /
``response.failed``) with the whole response. Every event carries ``sequence_number``. The response
is stored before the last event is sent, so a ``previous_response_id`` right after finds it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson

from llmserve.api.errors import payload_for, stream_error_event
from llmserve.api.serving import responses_convert as convert
from llmserve.api.serving.openai_responses import chat_ask, pending_response, response_object
from llmserve.api.serving.replies import StreamReply, stream_headers
from llmserve.request_context import RequestContext
from llmserve.schemas.responses import ResponsesRequest
from llmserve.services.chat import ChatService, ChatStream
from llmserve.services.responses import ResponseStore, StoredResponse
from llmserve.storage.models import utcnow
from llmserve.types import Delta, Usage


class _Sequence:
    def __init__(self) -> None:
        self.number = 0

    def event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, **fields, "sequence_number": self.number}
        self.number += 1
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


class _Output:
    """Builds the output items from deltas, saying each step as its event."""

    def __init__(self, events: _Sequence, message_id: str) -> None:
        self.events = events
        self.message_id = message_id
        self.items: list[dict[str, Any]] = []
        self._text: list[str] | None = None  # the open message's text, None when none is open
        self._calls: dict[int, dict[str, Any]] = {}  # tool-call index → its function_call item
        self.finish_reason: str | None = None

    def delta(self, delta: Delta) -> Iterator[bytes]:
        if delta.text:
            yield from self._text_piece(delta.text)
        for fragment in delta.tool_calls:
            yield from self._call_piece(fragment)
        if delta.finish_reason is not None:
            self.finish_reason = delta.finish_reason

    def close(self) -> Iterator[bytes]:
        if not self.items:  # an empty reply is still one (empty) message, as a non-streamed one is
            yield from self._open_message()
        yield from self._close_message()
        for item in self._calls.values():
            index = self.items.index(item)
            done = {"item_id": item["id"], "output_index": index, "name": item["name"]}
            yield self.events.event(
                "response.function_call_arguments.done", arguments=item["arguments"], **done
            )
            item["status"] = "completed"
            yield self.events.event("response.output_item.done", item=item, output_index=index)

    def _open_message(self) -> Iterator[bytes]:
        item = {
            "type": "message",
            "id": self.message_id,
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        self.items.append(item)
        self._text = []
        where = {"item_id": self.message_id, "output_index": len(self.items) - 1}
        yield self.events.event("response.output_item.added", item=item, output_index=where["output_index"])
        part = {"type": "output_text", "text": "", "annotations": []}
        yield self.events.event("response.content_part.added", content_index=0, part=part, **where)

    def _text_piece(self, text: str) -> Iterator[bytes]:
        if self._text is None:
            yield from self._open_message()
        assert self._text is not None
        self._text.append(text)
        where = {"item_id": self.message_id, "output_index": len(self.items) - 1, "content_index": 0}
        yield self.events.event("response.output_text.delta", delta=text, logprobs=[], **where)

    def _close_message(self) -> Iterator[bytes]:
        if self._text is None:
            return
        text, self._text = "".join(self._text), None
        index = next(i for i, item in enumerate(self.items) if item["id"] == self.message_id)
        where = {"item_id": self.message_id, "output_index": index, "content_index": 0}
        yield self.events.event("response.output_text.done", text=text, logprobs=[], **where)
        part = {"type": "output_text", "text": text, "annotations": []}
        yield self.events.event("response.content_part.done", part=part, **where)
        item = self.items[index]
        item.update(status="completed", content=[part])
        yield self.events.event("response.output_item.done", item=item, output_index=index)

    def _call_piece(self, fragment: dict[str, Any]) -> Iterator[bytes]:
        yield from self._close_message()  # text before a tool call is a message of its own
        position = int(fragment.get("index", 0))
        function = fragment.get("function") or {}
        item = self._calls.get(position)
        if item is None:
            item = {
                "type": "function_call",
                "id": convert.new_item_id("fc"),
                "call_id": fragment.get("id") or convert.new_item_id("call"),
                "name": function.get("name") or "",
                "arguments": "",
                "status": "in_progress",
            }
            self._calls[position] = item
            self.items.append(item)
            yield self.events.event("response.output_item.added", item=item, output_index=len(self.items) - 1)
        if piece := function.get("arguments"):
            item["arguments"] += piece
            where = {"item_id": item["id"], "output_index": self.items.index(item)}
            yield self.events.event("response.function_call_arguments.delta", delta=piece, **where)


async def stream(
    chat: ChatService, store: ResponseStore, body: ResponsesRequest, ctx: RequestContext
) -> StreamReply:
    ask, items = await chat_ask(store, body, ctx.tenant, chat.registry)
    pending = pending_response(body, ctx.tenant, items, body.model or "")
    started = await chat.open_stream(ask, ctx)  # errors before the first byte are HTTP errors
    pending.model = started.model
    return StreamReply(_events(started, pending, store, keep=body.store), stream_headers(started))


async def _events(
    stream: ChatStream, pending: StoredResponse, store: ResponseStore, *, keep: bool
) -> AsyncIterator[bytes]:
    events = _Sequence()
    yield events.event("response.created", response=response_object(pending))
    yield events.event("response.in_progress", response=response_object(pending))
    output = _Output(events, f"msg_{stream.message_id}")
    usage: Usage | None = None
    try:
        async for event in stream.events:
            if isinstance(event, Usage):
                usage = event
            elif event.index == 0:
                for encoded in output.delta(event):
                    yield encoded
        for encoded in output.close():
            yield encoded
    except Exception as exc:  # the status line is sent: the failure is the last event
        stream_error_event(exc)  # logged as every stream's failure is (the SSE bytes are not sent)
        pending.status, pending.error = "failed", _error(exc)
    else:
        length = output.finish_reason == "length"
        pending.status = "incomplete" if length else "completed"
        pending.incomplete_reason = "max_output_tokens" if length else None
    pending.output, pending.completed_at = output.items, utcnow()
    pending.usage = convert.usage_of(usage or stream.usage)
    if keep:
        await store.save(pending)
    yield events.event(f"response.{pending.status}", response=response_object(pending))


def _error(exc: BaseException) -> dict[str, Any]:
    error = payload_for(exc)["error"]
    return {"code": error.get("code") or error.get("type"), "message": error.get("message")}
