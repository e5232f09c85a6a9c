"""Answer: a non-streamed call from the router or the cache, settled once, masked on the way out."""

from __future__ import annotations

from decimal import Decimal

import pytest

from llmserve.config import GuardrailSettings
from llmserve.services.chat.answer import answer
from llmserve.services.chat.call import COST_HEADER, ChatResult
from llmserve.services.chat.prepare import ChatAsk, prepare_chat
from llmserve.types import ChatMessage, GenerationOptions, Usage
from tests.unit.routing.fakes import FakeProvider, upstream_error
from tests.unit.services.chat.fakes import COST, Fixture, build

GREEDY = GenerationOptions(temperature=0, max_tokens=8)


async def ask(fixture: Fixture, *, store: bool = False) -> ChatResult:
    call = await prepare_chat(
        fixture.pipeline, ChatAsk([ChatMessage("user", "hi")], GREEDY, store=store), None, stream=False
    )
    return await answer(fixture.pipeline, call)


async def test_a_miss_is_routed_billed_and_cached_then_the_same_question_is_a_free_hit() -> None:
    fixture = build()
    first = await ask(fixture)
    second = await ask(fixture)
    assert fixture.provider.calls == 1
    assert (first.cache_status, second.cache_status) == ("miss", "hit")
    assert first.text == second.text == "hello"
    assert first.headers[COST_HEADER] == COST and second.headers[COST_HEADER] == "0"
    assert [row.cost_usd for row in fixture.ledger.rows] == [Decimal(COST), Decimal(0)]
    assert [row.cache_status for row in fixture.ledger.rows] == ["miss", "hit"]
    assert first.headers["x-ratelimit-remaining-requests"] == "9"
    assert fixture.accounting.bills == 2  # once per request


async def test_admission_is_settled_with_the_real_usage_and_cost() -> None:
    fixture = build()
    await ask(fixture)
    assert fixture.admission.passes[0].settled == [(Usage(3, 2), Decimal(COST))]


async def test_a_failed_call_releases_admission_and_books_nothing() -> None:
    fixture = build(FakeProvider("down", default=upstream_error(400)))
    with pytest.raises(Exception, match="400"):
        await ask(fixture)
    assert fixture.admission.passes[0].settled == [(None, 0)]
    assert fixture.ledger.rows == [] and fixture.conversations.replies == []
    assert fixture.log == ["admission"]


async def test_a_stored_exchange_gets_a_conversation_id_and_the_reply_as_the_client_saw_it() -> None:
    fixture = build(guardrails=GuardrailSettings(pii_output="mask", pii_entities=["email"]))
    fixture.provider.name = "write to bob@example.com"
    result = await ask(fixture, store=True)
    conversation_id, stored_reply, reply_id = fixture.conversations.replies[0]
    assert result.conversation_id == conversation_id
    assert reply_id == result.message_id
    assert "bob@example.com" not in result.text and "bob@example.com" not in stored_reply
    assert result.text == stored_reply
