"""Settle: one ending for answers and streams, in one order, with the bill computed once."""

from __future__ import annotations

from decimal import Decimal

from llmserve.routing.route_info import RouteInfo
from llmserve.services.chat.answer import answer
from llmserve.services.chat.call import Outcome
from llmserve.services.chat.prepare import ChatAsk, admit, prepare_chat
from llmserve.services.chat.settle import settle
from llmserve.services.chat.stream import open_stream
from llmserve.types import ChatMessage, Choice, Completion, GenerationOptions, Usage
from tests.unit.services.chat.fakes import COST, GROUP, build

GREEDY = GenerationOptions(temperature=0, max_tokens=8)
ORDER = ["admission", "cache", "ledger", "history"]


def ask(*, store: bool = False) -> ChatAsk:
    return ChatAsk([ChatMessage("user", "hi")], GREEDY, store=store)


async def test_an_answer_settles_in_order_admission_cache_ledger_history() -> None:
    fixture = build()
    await answer(fixture.pipeline, await prepare_chat(fixture.pipeline, ask(store=True), None, stream=False))
    assert fixture.log == ORDER


async def test_a_stream_settles_in_the_same_order() -> None:
    fixture = build()
    stream = await open_stream(
        fixture.pipeline, await prepare_chat(fixture.pipeline, ask(store=True), None, stream=True)
    )
    async for _ in stream.events:
        pass
    assert fixture.log == ORDER


async def test_a_cache_hit_is_free_is_not_stored_again_and_costs_one_bill() -> None:
    fixture = build()
    call = await prepare_chat(fixture.pipeline, ask(), None, stream=False)
    await admit(fixture.pipeline, call)
    hit = Outcome(
        RouteInfo(GROUP, "cache"), Usage(3, 2), Completion([Choice(0, "x", "stop")], Usage(3, 2)), "hit", "x"
    )
    settled = await settle(fixture.pipeline, call, hit, "m1")
    assert settled.bill.cost == 0 and settled.bill.usage == Usage(0, 0)
    assert fixture.log == ["admission", "ledger"]  # no cache store for a hit, no history unasked
    assert fixture.accounting.bills == 1


async def test_a_miss_is_billed_at_the_deployments_price() -> None:
    fixture = build()
    call = await prepare_chat(fixture.pipeline, ask(), None, stream=False)
    await admit(fixture.pipeline, call)
    miss = Outcome(RouteInfo(GROUP, "hello", attempts=1), Usage(3, 2), None, "miss", "x")
    settled = await settle(fixture.pipeline, call, miss, "m1")
    assert settled.bill.cost == Decimal(COST)
    assert fixture.log == ["admission", "ledger"]  # an unrebuildable stream (no completion) is not cached
    assert fixture.ledger.rows[0].deployment == "hello" and fixture.ledger.rows[0].latency_ms >= 0
