"""ConversationRepository inside caller-owned transactions."""

from __future__ import annotations

from datetime import UTC

import pytest
from sqlalchemy import func, select

from llmserve.errors import ConversationNotFound
from llmserve.storage.db import Database
from llmserve.storage.models import ConversationRow, MessageRow
from llmserve.storage.repositories import ConversationRepository, NewMessage


class Boom(Exception):
    pass


async def _count(db: Database, model: type[ConversationRow] | type[MessageRow]) -> int:
    async with db.session(readonly=True) as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


async def test_append_numbers_messages_after_the_last_one(database: Database) -> None:
    async with database.session() as session, session.begin():
        repo = ConversationRepository(session)
        await repo.create("c1", owner="t1", model="tiny", title="hello")
        first = await repo.append("c1", [NewMessage("user", "hi"), NewMessage("assistant", "hello")])
    async with database.session() as session, session.begin():
        second = await ConversationRepository(session).append("c1", [NewMessage("user", "again")])
    assert [row.seq for row in first + second] == [1, 2, 3]
    assert all(len(row.id) == 32 for row in first + second)


async def test_append_bumps_updated_at(database: Database) -> None:
    async with database.session() as session, session.begin():
        created = await ConversationRepository(session).create("c1", owner="t1", model=None, title=None)
    async with database.session() as session, session.begin():
        await ConversationRepository(session).append("c1", [NewMessage("user", "hi")])
    async with database.session(readonly=True) as session:
        row = await ConversationRepository(session).get("c1")
    assert row is not None
    assert row.updated_at > created.updated_at
    assert row.created_at == created.created_at
    assert row.created_at.tzinfo is UTC


async def test_append_to_unknown_conversation_raises(database: Database) -> None:
    async with database.session() as session, session.begin():
        with pytest.raises(ConversationNotFound):
            await ConversationRepository(session).append("nope", [NewMessage("user", "hi")])


async def test_create_twice_returns_the_existing_row(database: Database) -> None:
    async with database.session() as session, session.begin():
        await ConversationRepository(session).create("c1", owner="t1", model="a", title="first")
    async with database.session() as session, session.begin():
        again = await ConversationRepository(session).create("c1", owner="t1", model="b", title="second")
    assert (again.model, again.title) == ("a", "first")
    assert await _count(database, ConversationRow) == 1


async def test_list_messages_limit_keeps_the_most_recent_oldest_first(database: Database) -> None:
    async with database.session() as session, session.begin():
        repo = ConversationRepository(session)
        await repo.create("c1", owner="t1", model=None, title=None)
        await repo.append("c1", [NewMessage("user", f"m{i}") for i in range(5)])
    async with database.session(readonly=True) as session:
        repo = ConversationRepository(session)
        assert [m.content for m in await repo.list_messages("c1")] == ["m0", "m1", "m2", "m3", "m4"]
        assert [m.content for m in await repo.list_messages("c1", limit=2)] == ["m3", "m4"]


async def test_failure_after_append_rolls_everything_back(database: Database) -> None:
    with pytest.raises(Boom):
        async with database.session() as session, session.begin():
            repo = ConversationRepository(session)
            await repo.create("c1", owner="t1", model=None, title=None)
            await repo.append("c1", [NewMessage("user", "hi"), NewMessage("assistant", "hello")])
            raise Boom
    assert await _count(database, ConversationRow) == 0
    assert await _count(database, MessageRow) == 0


async def test_deleting_a_conversation_deletes_its_messages(database: Database) -> None:
    async with database.session() as session, session.begin():
        repo = ConversationRepository(session)
        await repo.create("c1", owner="t1", model=None, title=None)
        await repo.append("c1", [NewMessage("user", "hi")])
    async with database.session() as session, session.begin():
        conversation = await session.get(ConversationRow, "c1")
        await session.delete(conversation)
    assert await _count(database, MessageRow) == 0  # ON DELETE CASCADE (SQLite needs foreign_keys=ON)
