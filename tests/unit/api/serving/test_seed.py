"""seed: the seed-native shapes over the same pipeline (history, whole-text SSE, WebSocket messages)."""

from __future__ import annotations

from llmserve.api.serving import seed
from llmserve.request_context import RequestContext
from llmserve.schemas.seed import SeedChatRequest, SimpleChatRequest
from tests.unit.api.serving.conftest import service, sse_payloads


async def test_a_new_message_answers_with_the_whole_history_and_stores_the_conversation() -> None:
    chat, fixture = service()
    body = SeedChatRequest.model_validate(
        {"prompt": "hi", "history": [{"role": "user", "content": "before"}]}
    )
    reply, headers = await seed.new_message(chat, body, RequestContext())
    assert reply.response == "hello"
    assert [(t.role, t.content) for t in reply.history] == [
        ("user", "before"),
        ("user", "hi"),
        ("assistant", "hello"),
    ]
    assert reply.conversation_id in fixture.conversations.stored
    assert headers["x-llmserve-deployment"] == "hello"


async def test_the_text_stream_sends_pieces_or_one_whole_text_event() -> None:
    chat, _ = service(cache=False)
    body = SeedChatRequest.model_validate({"prompt": "hi"})
    pieces = await sse_payloads(
        (await seed.text_stream(chat, body, RequestContext(), incremental=True)).events
    )
    whole = await sse_payloads(
        (await seed.text_stream(chat, body, RequestContext(), incremental=False)).events
    )
    assert [p["text"] for p in pieces[:-1]] == ["hello", "!"]  # type: ignore[index]
    assert [p["text"] for p in whole[:-1]] == ["hello!"]  # type: ignore[index]
    assert pieces[-1] == whole[-1] == "[DONE]"
    assert len(pieces[0]["message_id"]) == 32  # type: ignore[index]


async def test_the_simple_chat_opts_in_to_the_cache_and_says_when_it_answered() -> None:
    chat, fixture = service()
    body = SimpleChatRequest.model_validate({"message": "hi"})  # temperature 1: cached only by opting in
    first, _ = await seed.simple_answer(chat, body, RequestContext())
    second, _ = await seed.simple_answer(chat, body, RequestContext())
    assert (first.cached, second.cached) == (False, True)
    assert fixture.provider.calls == 1


async def test_websocket_messages_are_chunks_then_one_complete() -> None:
    chat, _ = service()
    body = SeedChatRequest.model_validate({"prompt": "hi"})
    messages = [m async for m in seed.websocket_messages(chat, body, RequestContext())]
    assert [m["type"] for m in messages] == ["chunk", "chunk", "complete"]
    assert messages[-1]["full_response"] == "hello!" and messages[-1]["conversation_id"]
