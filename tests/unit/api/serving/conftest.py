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
    """Every event's JSON payload, and the literal "[DONE]"; asserts the SSE framing of each write
    (whole events only, one or more per write)."""
    payloads: list[object] = []
    async for written in events:
        assert written.startswith(b"data: ") and written.endswith(b"\n\n"), written
        for event in written[:-2].split(b"\n\n"):
            assert event.startswith(b"data: "), written
            data = event[len(b"data: ") :]
            payloads.append("[DONE]" if data == b"[DONE]" else orjson.loads(data))
    return payloads
