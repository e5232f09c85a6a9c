"""Serving modules over the pipeline of hand-written fakes (no HTTP, no server)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from llmserve.services.chat import ChatService
from tests.unit.routing.fakes import FakeProvider
from tests.unit.services.chat.fakes import Fixture, build


def service(provider: FakeProvider | None = None, *, cache: bool = True) -> tuple[ChatService, Fixture]:
    fixture = build(provider, cache=cache)
    return ChatService(fixture.pipeline), fixture


async def sse_payloads(events: AsyncIterator[bytes]) -> list[object]:
    """Every event's JSON payload, and the literal "[DONE]"; asserts the SSE framing of each event."""
    payloads: list[object] = []
    async for event in events:
        assert event.startswith(b"data: ") and event.endswith(b"\n\n"), event
        data = event[len(b"data: ") : -2]
        payloads.append("[DONE]" if data == b"[DONE]" else orjson.loads(data))
    return payloads
