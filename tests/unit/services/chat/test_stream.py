"""Stream: a primed stream passes its events on, and is settled only once its last event has gone out."""

from __future__ import annotations

from decimal import Decimal

import pytest

from llmserve.config import GuardrailSettings
from llmserve.observability.context import Cleanup, request_cleanups_var
from llmserve.services.chat.call import ChatStream
from llmserve.services.chat.prepare import ChatAsk, prepare_chat
from llmserve.services.chat.stream import open_stream
from llmserve.types import ChatMessage, Delta, GenerationOptions, StreamEvent, Usage
from tests.unit.routing.fakes import FakeProvider, upstream_error
from tests.unit.services.chat.fakes import COST, Fixture, build

GREEDY = GenerationOptions(temperature=0, max_tokens=8)


async def opened(fixture: Fixture, *, store: bool = False) -> ChatStream:
    ask = ChatAsk([ChatMessage("user", "hi")], GREEDY, store=store)
    return await open_stream(fixture.pipeline, await prepare_chat(fixture.pipeline, ask, None, stream=True))


async def drained(stream: ChatStream) -> list[StreamEvent]:
    return [event async for event in stream.events]


async def test_a_stream_is_settled_after_its_last_event_and_stored_with_its_whole_text() -> None:
    fixture = build()
    stream = await opened(fixture, store=True)
    assert fixture.ledger.rows == []  # nothing is booked while the stream is open
    events = await drained(stream)
    assert events == [Delta(0, "hello"), Delta(0, "!", "stop"), Usage(3, 2)]
    assert [row.cost_usd for row in fixture.ledger.rows] == [Decimal(COST)]
    assert fixture.admission.passes[0].settled == [(Usage(3, 2), Decimal(COST))]
    assert fixture.conversations.replies == [(stream.conversation_id, "hello!", stream.message_id)]
    assert fixture.accounting.bills == 1


async def test_a_client_that_leaves_frees_the_upstream_and_its_slots_and_books_nothing() -> None:
    fixture = build()
    stream = await opened(fixture, store=True)
    first = await anext(stream.events)
    assert first == Delta(0, "hello")
    await stream.events.aclose()  # type: ignore[attr-defined]
    assert fixture.provider.streams_closed == 1
    assert fixture.admission.passes[0].settled == [(None, 0)]
    assert fixture.ledger.rows == [] and fixture.conversations.replies == []
    assert fixture.accounting.cache is not None and await fixture.accounting.cache.size() == 0


async def test_a_finished_stream_is_cached_and_the_next_one_is_a_replay() -> None:
    fixture = build()
    await drained(await opened(fixture))
    replayed = await opened(fixture)
    assert replayed.cache_status == "hit" and replayed.route.deployment == "cache"
    events = await drained(replayed)
    assert "".join(e.text for e in events if isinstance(e, Delta)) == "hello!"
    assert fixture.provider.calls == 1
    assert [row.cost_usd for row in fixture.ledger.rows] == [Decimal(COST), Decimal(0)]


async def test_a_stream_that_cannot_open_releases_admission() -> None:
    fixture = build(FakeProvider("down", default=upstream_error(400)))
    with pytest.raises(Exception, match="400"):
        await opened(fixture)
    assert fixture.admission.passes[0].settled == [(None, 0)]


async def test_output_guardrails_mask_pieces_as_they_leave_and_the_stored_reply() -> None:
    fixture = build(guardrails=GuardrailSettings(pii_output="mask", pii_entities=["email"]))
    fixture.provider.name = "mail bob@example.com"
    stream = await opened(fixture, store=True)
    text = "".join(e.text for e in await drained(stream) if isinstance(e, Delta))
    assert "bob@example.com" not in text and text.startswith("mail ")
    stored = fixture.conversations.replies[0][1]
    assert "bob@example.com" not in stored and stored == text


async def test_a_stream_never_read_frees_its_slot_and_upstream_when_the_request_ends() -> None:
    # A client that left between the answer's head and its first event never started the surface's
    # generator: no finally ran, and the admission slot and the upstream connection stayed taken.
    fixture = build()
    cleanups: list[Cleanup] = []
    token = request_cleanups_var.set(cleanups)
    try:
        await opened(fixture, store=True)
    finally:
        request_cleanups_var.reset(token)
    assert fixture.admission.passes[0].settled == []  # held while the answer is on its way
    for cleanup in cleanups:
        await cleanup()
    assert fixture.provider.streams_closed == 1
    assert fixture.admission.passes[0].settled == [(None, 0)]
    assert fixture.ledger.rows == [] and fixture.conversations.replies == []


async def test_the_end_of_request_close_of_a_finished_stream_changes_nothing() -> None:
    fixture = build()
    cleanups: list[Cleanup] = []
    token = request_cleanups_var.set(cleanups)
    try:
        stream = await opened(fixture)
    finally:
        request_cleanups_var.reset(token)
    await drained(stream)
    for cleanup in cleanups:
        await cleanup()
    assert fixture.admission.passes[0].settled == [(Usage(3, 2), Decimal(COST))]  # once
    assert len(fixture.ledger.rows) == 1
