"""ApiKeyRepository on SQLite and PostgreSQL: lookups by hash, exact budgets, JSON fields, no commits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from llmserve.storage.db import Database
from llmserve.storage.models import ApiKeyRow, utcnow
from llmserve.storage.repositories import ApiKeyRepository, new_id


def key_row(key_hash: str = "a" * 64, **fields: Any) -> ApiKeyRow:
    now = utcnow()
    values: dict[str, Any] = {
        "id": new_id(),
        "key_hash": key_hash,
        "key_prefix": "sk-llm-abcde",
        "role": "user",
        "budget_period": "monthly",
        "created_at": now,
        "updated_at": now,
        **fields,
    }
    return ApiKeyRow(**values)


async def _add(db: Database, row: ApiKeyRow) -> ApiKeyRow:
    async with db.session() as session, session.begin():
        return await ApiKeyRepository(session).add(row)


async def _count(db: Database) -> int:
    async with db.session(readonly=True) as session:
        return await session.scalar(select(func.count()).select_from(ApiKeyRow)) or 0


async def test_a_key_is_found_by_its_hash_with_every_field_intact(database: Database) -> None:
    expires = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    added = await _add(
        database,
        key_row(
            "b" * 64,
            name="ci bot",
            role="admin",
            models=["tiny-chat", "gpt"],
            rpm=60,
            tpm=10_000,
            max_parallel=2,
            max_budget_usd=Decimal("12.3456789012"),
            budget_period="daily",
            priority=3,
            guardrails={"pii_input": "mask"},
            metadata_={"team": "search", "nested": {"n": 1}},
            expires_at=expires,
        ),
    )
    async with database.session(readonly=True) as session, session.begin():
        found = await ApiKeyRepository(session).by_hash("b" * 64)
        missing = await ApiKeyRepository(session).by_hash("c" * 64)
    assert missing is None
    assert found is not None and found.id == added.id
    assert (found.name, found.role, found.models) == ("ci bot", "admin", ["tiny-chat", "gpt"])
    assert (found.rpm, found.tpm, found.max_parallel, found.priority) == (60, 10_000, 2, 3)
    assert found.max_budget_usd == Decimal("12.3456789012"), "budgets are exact, not floats"
    assert found.guardrails == {"pii_input": "mask"}
    assert found.metadata_ == {"team": "search", "nested": {"n": 1}}
    assert found.expires_at == expires and found.expires_at.tzinfo is not None
    assert found.revoked_at is None


async def test_two_keys_cannot_share_a_hash(database: Database) -> None:
    await _add(database, key_row("d" * 64))
    with pytest.raises(IntegrityError):
        await _add(database, key_row("d" * 64))
    assert await _count(database) == 1


async def test_the_repository_never_commits(database: Database) -> None:
    async with database.session() as session:
        await session.begin()
        await ApiKeyRepository(session).add(key_row())
        await session.rollback()
    assert await _count(database) == 0


async def test_update_changes_only_the_given_fields(database: Database) -> None:
    added = await _add(database, key_row(name="before", rpm=5, metadata_={"a": 1}))
    async with database.session() as session, session.begin():
        updated = await ApiKeyRepository(session).update(
            added.id, {"name": "after", "rpm": None, "metadata": {"b": 2}, "models": ["x"]}
        )
    assert updated is not None
    async with database.session(readonly=True) as session, session.begin():
        row = await ApiKeyRepository(session).get(added.id)
    assert row is not None
    assert (row.name, row.rpm, row.metadata_, row.models) == ("after", None, {"b": 2}, ["x"])
    assert row.key_hash == added.key_hash and row.role == "user"
    assert row.updated_at >= added.updated_at


async def test_update_refuses_fields_that_are_not_for_changing(database: Database) -> None:
    added = await _add(database, key_row())
    async with database.session() as session, session.begin():
        with pytest.raises(ValueError, match="key_hash"):
            await ApiKeyRepository(session).update(added.id, {"key_hash": "e" * 64})


async def test_revoke_keeps_the_first_revocation_time(database: Database) -> None:
    added = await _add(database, key_row())
    async with database.session() as session, session.begin():
        first = await ApiKeyRepository(session).revoke(added.id)
    assert first is not None and first.revoked_at is not None
    async with database.session() as session, session.begin():
        again = await ApiKeyRepository(session).revoke(added.id)
        unknown = await ApiKeyRepository(session).revoke("nope")
    assert again is not None and again.revoked_at == first.revoked_at
    assert unknown is None


async def test_list_all_is_oldest_first_and_includes_revoked_keys(database: Database) -> None:
    base = utcnow()
    older = await _add(database, key_row("1" * 64, created_at=base - timedelta(minutes=1)))
    newer = await _add(database, key_row("2" * 64, created_at=base))
    async with database.session() as session, session.begin():
        await ApiKeyRepository(session).revoke(older.id)
    async with database.session(readonly=True) as session, session.begin():
        rows = await ApiKeyRepository(session).list_all()
    assert [row.id for row in rows] == [older.id, newer.id]
    assert rows[0].revoked_at is not None
