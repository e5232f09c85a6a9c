"""ConversationService against real SQLite and PostgreSQL databases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from llmserve.errors import ConversationNotFound, InvalidRequest
from llmserve.services.conversations import ConversationService, Turn
from llmserve.storage.db import Database
from llmserve.storage.repositories import ConversationRepository


async def _exchange(
    service: ConversationService, conversation_id: str | None, prompt: str, reply: str
) -> tuple[str, str]:
    return await service.record_exchange(
        conversation_id, [Turn("user", prompt)], reply, model="tiny", prompt_tokens=7, completion_tokens=3
    )


async def test_new_conversation_round_trip(database: Database) -> None:
    service = ConversationService(database)
    turns = [Turn("system", "Be brief."), Turn("user", "What is 2+2?")]
    conversation_id, reply_id = await service.record_exchange(
        None, turns, "4", model="tiny", prompt_tokens=12, completion_tokens=1
    )
    assert len(conversation_id) == 32
    assert await service.history(conversation_id) == [*turns, Turn("assistant", "4")]

    messages = await service.messages(conversation_id)
    reply = messages[-1]
    assert (reply.id, reply.role, reply.model) == (reply_id, "assistant", "tiny")
    assert (reply.prompt_tokens, reply.completion_tokens) == (12, 1)
    assert all(m.conversation_id == conversation_id for m in messages)
    assert abs(datetime.now(UTC) - reply.created_at) < timedelta(minutes=1)
    assert messages[0].prompt_tokens is None  # usage belongs to the reply only


async def test_history_is_oldest_first_across_exchanges(database: Database) -> None:
    service = ConversationService(database)
    conversation_id, _ = await _exchange(service, None, "one", "1")
    await _exchange(service, conversation_id, "two", "2")
    await _exchange(service, conversation_id, "three", "3")
    history = await service.history(conversation_id)
    assert [t.content for t in history] == ["one", "1", "two", "2", "three", "3"]
    assert [t.role for t in history] == ["user", "assistant"] * 3


async def test_client_named_conversation_is_created_on_first_use(database: Database) -> None:
    service = ConversationService(database)
    conversation_id, _ = await _exchange(service, "support-ticket_42", "hi", "hello")
    assert conversation_id == "support-ticket_42"
    assert len(await service.history("support-ticket_42")) == 2


async def test_create_if_missing_false_refuses_unknown_conversation(database: Database) -> None:
    service = ConversationService(database)
    with pytest.raises(ConversationNotFound):
        await service.record_exchange(
            "ghost",
            [Turn("user", "hi")],
            "x",
            model="m",
            prompt_tokens=1,
            completion_tokens=1,
            create_if_missing=False,
        )
    with pytest.raises(ConversationNotFound):
        await service.history("ghost")


async def test_unknown_conversation_is_not_found(database: Database) -> None:
    service = ConversationService(database)
    with pytest.raises(ConversationNotFound, match="Conversation 'abc123' not found") as raised:
        await service.history("abc123")
    assert raised.value.status_code == 404
    with pytest.raises(ConversationNotFound):
        await service.messages("abc123")


@pytest.mark.parametrize("bad_id", ["", "a" * 65, "../etc/passwd", "has space", "ok\n", "ünï", "a;drop"])
async def test_bad_conversation_id_is_invalid_request(database: Database, bad_id: str) -> None:
    service = ConversationService(database)
    for call in (service.history(bad_id), service.messages(bad_id), _exchange(service, bad_id, "hi", "x")):
        with pytest.raises(InvalidRequest) as raised:
            await call
        assert raised.value.param == "conversation_id"
        assert raised.value.status_code == 400


async def test_history_survives_restart(database: Database) -> None:
    conversation_id, _ = await _exchange(ConversationService(database), None, "remember me", "ok")
    await database.dispose()
    reopened = Database(database.url)
    try:
        await reopened.upgrade()
        history = await ConversationService(reopened).history(conversation_id)
    finally:
        await reopened.dispose()
    assert [t.content for t in history] == ["remember me", "ok"]


async def test_concurrent_exchanges_lose_nothing(database: Database) -> None:
    service = ConversationService(database)
    conversation_id, _ = await _exchange(service, None, "start", "started")
    await asyncio.gather(*(_exchange(service, conversation_id, f"q{i}", f"a{i}") for i in range(10)))
    messages = await service.messages(conversation_id)
    assert len(messages) == 22
    contents = [m.content for m in messages]
    # Each exchange stays contiguous: a question is immediately followed by its own answer.
    for i in range(10):
        assert contents[contents.index(f"q{i}") + 1] == f"a{i}"


async def test_concurrent_first_use_of_one_client_id(database: Database) -> None:
    service = ConversationService(database)
    await asyncio.gather(*(_exchange(service, "shared", f"q{i}", f"a{i}") for i in range(5)))
    assert len(await service.history("shared")) == 10


async def test_failed_exchange_writes_nothing(database: Database) -> None:
    service = ConversationService(database)
    first_id, reply_id = await _exchange(service, None, "hi", "hello")
    # Reusing a message id makes the insert fail after the conversation row and user turn were
    # written in the same transaction; none of it may survive.
    with pytest.raises(IntegrityError):
        await service.record_exchange(
            "second",
            [Turn("user", "lost")],
            "lost too",
            model="m",
            prompt_tokens=1,
            completion_tokens=1,
            reply_id=reply_id,
        )
    with pytest.raises(ConversationNotFound):
        await service.history("second")
    with pytest.raises(IntegrityError):
        await service.record_exchange(
            first_id,
            [Turn("user", "lost")],
            "lost too",
            model="m",
            prompt_tokens=1,
            completion_tokens=1,
            reply_id=reply_id,
        )
    assert [t.content for t in await service.history(first_id)] == ["hi", "hello"]


async def test_unicode_round_trips(database: Database) -> None:
    service = ConversationService(database)
    prompt = "你好，世界！今天天气怎么样？🌦️"
    reply = "天气晴朗 ☀️ — 温度 25°C 👍🏽 \U0001f9d1\u200d\U0001f4bb"
    conversation_id, _ = await _exchange(service, None, prompt, reply)
    assert await service.history(conversation_id) == [Turn("user", prompt), Turn("assistant", reply)]


async def test_title_is_first_80_chars_of_first_user_turn(database: Database) -> None:
    service = ConversationService(database)
    long_prompt = "x" * 200
    turns = [Turn("system", "sys"), Turn("user", long_prompt), Turn("user", "later")]
    conversation_id, _ = await service.record_exchange(
        None, turns, "ok", model="tiny", prompt_tokens=1, completion_tokens=1
    )
    async with database.session(readonly=True) as session:
        row = await ConversationRepository(session).get(conversation_id)
    assert row is not None
    assert row.title == "x" * 80
    assert row.model == "tiny"


async def test_a_conversation_is_its_owners_alone(database: Database) -> None:
    service = ConversationService(database)
    conversation_id, _ = await service.record_exchange(
        None, [Turn("user", "secret")], "ok", model="m", prompt_tokens=1, completion_tokens=1, owner="key:a"
    )
    assert [t.content for t in await service.history(conversation_id, owner="key:a")] == ["secret", "ok"]
    for read in (service.history, service.messages, service.history_if_any):
        with pytest.raises(ConversationNotFound):
            await read(conversation_id, owner="key:b")
    with pytest.raises(ConversationNotFound):
        await service.record_exchange(
            conversation_id,
            [Turn("user", "mine now")],
            "x",
            model="m",
            prompt_tokens=1,
            completion_tokens=1,
            owner="key:b",
        )
    assert len(await service.messages(conversation_id, owner="key:a")) == 2  # nothing appended


async def test_an_id_nobody_used_is_free_to_start(database: Database) -> None:
    assert await ConversationService(database).history_if_any("fresh-id", owner="key:a") is None
