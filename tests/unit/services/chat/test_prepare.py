"""Prepare: history, model group, context fit; then admission and the cache lookup, in that order."""

from __future__ import annotations

import pytest

from llmserve.errors import ModelNotFound
from llmserve.request_context import RequestContext
from llmserve.services.chat.prepare import ChatAsk, admit, history_context, prepare_chat, prepare_text
from llmserve.services.conversations import Turn
from llmserve.types import ChatInput, ChatMessage, GenerationOptions, TextInput
from tests.unit.services.chat.fakes import GROUP, FakeConversations, RecordingLog, build

HI = ChatMessage("user", "hi")
GREEDY = GenerationOptions(temperature=0, max_tokens=8)


async def test_a_stored_conversation_is_the_history_and_the_inline_history_is_ignored() -> None:
    conversations = FakeConversations(
        RecordingLog(), {"c1": [Turn("user", "before"), Turn("assistant", "ok")]}
    )
    echoed = [ChatMessage("user", "echoed by the client")]
    context, new_turns = await history_context(conversations, "c1", echoed, [HI])
    assert [m.content for m in context] == ["before", "ok", "hi"]
    assert new_turns == [HI]


async def test_a_new_conversation_starts_from_the_inline_history() -> None:
    conversations = FakeConversations(RecordingLog())
    inline = [ChatMessage("user", "earlier"), ChatMessage("assistant", "sure")]
    for conversation_id in (None, "chosen-by-the-client"):
        context, new_turns = await history_context(conversations, conversation_id, inline, [HI])
        assert [m.content for m in context] == ["earlier", "sure", "hi"]
        assert new_turns == context


async def test_a_stored_stream_names_its_conversation_before_anything_is_stored() -> None:
    fixture = build()
    ask = ChatAsk([HI], GREEDY, store=True)
    streamed = await prepare_chat(fixture.pipeline, ask, None, stream=True)
    answered = await prepare_chat(fixture.pipeline, ask, None, stream=False)
    assert streamed.conversation_id is not None and streamed.persist
    assert answered.conversation_id is None and answered.persist  # record_exchange will create one
    assert fixture.log == []  # preparing stores, admits and bills nothing


async def test_the_call_carries_the_group_the_fitted_context_and_the_request_time() -> None:
    fixture = build()
    ctx = RequestContext(received_at=12.5)
    call = await prepare_chat(fixture.pipeline, ChatAsk([HI], GREEDY), ctx, stream=False)
    assert call.group == GROUP and call.started == 12.5 and not call.persist
    assert isinstance(call.request, ChatInput) and call.context == [HI]


async def test_an_unknown_model_fails_before_admission() -> None:
    fixture = build()
    with pytest.raises(ModelNotFound):
        await prepare_chat(fixture.pipeline, ChatAsk([HI], GREEDY, model="nope"), None, stream=False)
    assert fixture.admission.passes == []


def test_a_raw_prompt_is_a_text_input_without_history() -> None:
    fixture = build()
    call = prepare_text(fixture.pipeline, "Once upon", GREEDY, None, None, stream=True)
    assert isinstance(call.request, TextInput) and call.stream and call.context == []


async def test_admission_then_one_cache_request_built_from_what_admission_let_through() -> None:
    fixture = build()
    call = await prepare_chat(fixture.pipeline, ChatAsk([HI], GREEDY), None, stream=False)
    assert await admit(fixture.pipeline, call) is None  # an empty cache
    assert call.admitted is fixture.admission.passes[0]
    assert call.cache_request is not None and call.cache_request.messages == call.request.messages  # type: ignore[union-attr]


async def test_a_failed_cache_lookup_gives_the_admission_back() -> None:
    fixture = build()
    assert fixture.accounting.cache is not None

    async def broken(req: object) -> None:
        raise RuntimeError("cache down")

    fixture.accounting.cache.lookup = broken  # type: ignore[method-assign]
    call = await prepare_chat(fixture.pipeline, ChatAsk([HI], GREEDY), None, stream=False)
    with pytest.raises(RuntimeError):
        await admit(fixture.pipeline, call)
    assert fixture.admission.passes[0].settled == [(None, 0)]
