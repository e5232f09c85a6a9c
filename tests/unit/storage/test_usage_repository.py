"""UsageRepository: multi-row inserts and SQL-side reports, exact on SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from alembic import command
from sqlalchemy import func, inspect, select
from sqlalchemy.exc import StatementError

from llmserve.storage.db import Database, alembic_config
from llmserve.storage.models import UsageLedgerRow
from llmserve.storage.repositories import UsageRecord, UsageRepository, UsageRow

DAY1 = datetime(2025, 3, 1, 23, 59, 59, 999_999, tzinfo=UTC)
DAY2 = datetime(2025, 3, 2, 0, 0, 0, tzinfo=UTC)


def usage(
    model: str = "gpt",
    *,
    at: datetime = DAY1,
    cost: str = "0.0005253",
    api_key: str | None = "key-a",
    cache_status: str = "miss",
    status: str = "ok",
    prompt_tokens: int = 1234,
    completion_tokens: int = 567,
) -> UsageRecord:
    return UsageRecord(
        request_id="req",
        model=model,
        deployment=f"{model}-1",
        provider="openai",
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost_usd=Decimal(cost),
        latency_ms=12.5,
        api_key=api_key,
        cache_status=cache_status,  # type: ignore[arg-type]
        status=status,  # type: ignore[arg-type]
        created_at=at,
    )


async def _add(db: Database, *records: UsageRecord) -> None:
    async with db.session() as session, session.begin():
        await UsageRepository(session).add_many(records)


async def _report(db: Database, **filters: object) -> list[UsageRow]:
    async with db.session(readonly=True) as session, session.begin():
        return await UsageRepository(session).report(**filters)  # type: ignore[arg-type]


async def test_rows_round_trip_with_exact_cost_and_utc_time(database: Database) -> None:
    record = usage(cost="0.0000000001", at=datetime(2025, 3, 1, 12, tzinfo=UTC), api_key=None)
    await _add(database, record)
    async with database.session(readonly=True) as session:
        row = (await session.scalars(select(UsageLedgerRow))).one()
    assert row.cost_usd == Decimal("0.0000000001")  # a REAL would round this away
    assert row.created_at == record.created_at and row.created_at.tzinfo is UTC
    assert (row.api_key, row.tokens_estimated, row.status, row.latency_ms) == (None, False, "ok", 12.5)


async def test_sums_of_costs_are_exact(database: Database) -> None:
    # 0.1 + 0.2 style sums: floats drift, the ledger must not.
    tiny = [usage(cost="0.0000001") for _ in range(1000)]
    await _add(database, *tiny, usage(cost="0.1"), usage(cost="0.2"))
    [row] = await _report(database)
    assert row.cost_usd == Decimal("0.3001")
    assert f"{row.cost_usd:f}" == "0.3001000000"
    assert (row.requests, row.prompt_tokens, row.completion_tokens) == (1002, 1002 * 1234, 1002 * 567)


async def test_group_by_model_day_and_both(database: Database) -> None:
    await _add(
        database,
        usage("a", at=DAY1, cache_status="hit"),
        usage("a", at=DAY2, cache_status="semantic-hit"),
        usage("b", at=DAY2, status="error"),
    )
    by_model = await _report(database, group_by="model")
    assert [(r.model, r.day, r.requests, r.cache_hits, r.errors) for r in by_model] == [
        ("a", None, 2, 2, 0),
        ("b", None, 1, 0, 1),
    ]
    by_day = await _report(database, group_by="day")
    # The last microsecond of March 1st and midnight UTC land on different days.
    assert [(r.model, r.day, r.requests) for r in by_day] == [
        (None, date(2025, 3, 1), 1),
        (None, date(2025, 3, 2), 2),
    ]
    both = await _report(database, group_by="model,day")
    assert [(r.day, r.model, r.requests) for r in both] == [
        (date(2025, 3, 1), "a", 1),
        (date(2025, 3, 2), "a", 1),
        (date(2025, 3, 2), "b", 1),
    ]


async def test_filters_by_key_model_and_half_open_time_range(database: Database) -> None:
    await _add(
        database,
        usage("a", at=DAY1, api_key="k1"),
        usage("a", at=DAY2, api_key="k2"),
        usage("b", at=DAY2 + timedelta(hours=1), api_key="k1"),
    )
    assert [(r.model, r.requests) for r in await _report(database, api_key="k1")] == [("a", 1), ("b", 1)]
    assert [(r.model, r.requests) for r in await _report(database, model="b")] == [("b", 1)]
    since_day2 = await _report(database, start=DAY2)
    assert [(r.model, r.requests) for r in since_day2] == [("a", 1), ("b", 1)]
    before_day2 = await _report(database, end=DAY2)  # end is exclusive
    assert [(r.model, r.requests) for r in before_day2] == [("a", 1)]
    assert await _report(database, api_key="k2", model="b") == []


async def test_over_long_strings_are_clipped_not_refused(database: Database) -> None:
    # PostgreSQL refuses over-long values; one such row must not sink the batch it sits in.
    record = usage("m" * 300)
    await _add(database, record, usage("ok"))
    rows = await _report(database)
    assert sorted((r.model or "")[:3] for r in rows) == ["mmm", "ok"]
    assert max(len(r.model or "") for r in rows) == 255


async def test_a_row_already_there_is_skipped_not_doubled(database: Database) -> None:
    # A journal replayed after a crash may hold rows committed just before it: same entry id, once.
    first, second = usage(cost="0.1"), usage(cost="0.2")
    await _add(database, first)
    await _add(database, first, second, second)
    [row] = await _report(database)
    assert (row.requests, row.cost_usd) == (2, Decimal("0.3"))


async def test_float_costs_are_refused(database: Database) -> None:
    bad = UsageRecord("req", "gpt", "d", "openai", 1, 1, 0.1, 1.0)  # type: ignore[arg-type]
    with pytest.raises(StatementError, match="Decimal"):
        await _add(database, bad)
    async with database.session(readonly=True) as session:
        assert await session.scalar(select(func.count()).select_from(UsageLedgerRow)) == 0


async def test_migration_0002_downgrades_to_0001_keeping_conversations(database: Database) -> None:
    # Alembic is synchronous and runs its own event loop in env.py, hence the thread.
    await asyncio.to_thread(command.downgrade, alembic_config(database.url), "0001")
    async with database.engine.connect() as connection:
        tables = set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
    assert tables == {"alembic_version", "conversations", "messages"}
    await database.upgrade()
    await _add(database, usage())
    assert len(await _report(database)) == 1
