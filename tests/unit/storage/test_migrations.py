"""Alembic migrations: apply on empty databases, re-run safely, and match the models exactly.

Replicas upgrading at once, as separate processes, are in tests/e2e/storage/test_migrations.py."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from llmserve.storage.db import Database, alembic_config
from llmserve.storage.models import Base
from tests.fixtures_db import current_revision, migration_head

ALL_TABLES = {
    "alembic_version",
    "api_keys",
    "batches",
    "conversations",
    "file_chunks",
    "files",
    "jobs",
    "response_items",
    "responses",
    "messages",
    "usage_ledger",
}


async def _tables(db: Database) -> set[str]:
    async with db.engine.connect() as connection:
        return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))


async def test_upgrade_creates_schema_on_empty_database(database_url: str) -> None:
    db = Database(database_url)
    try:
        assert await _tables(db) == set()
        await db.upgrade()
        assert await _tables(db) == ALL_TABLES
        assert await current_revision(db) == migration_head()
    finally:
        await db.dispose()


async def test_upgrade_again_is_a_noop_that_keeps_data(database: Database) -> None:
    async with database.session() as session, session.begin():
        await session.execute(
            text(
                "INSERT INTO conversations (id, title, created_at, updated_at) "
                "VALUES ('keep', 'kept', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
    await database.upgrade()
    await database.upgrade()
    assert await current_revision(database) == migration_head()
    async with database.session(readonly=True) as session:
        assert await session.scalar(text("SELECT title FROM conversations WHERE id = 'keep'")) == "kept"


async def test_migrations_match_the_models(database: Database) -> None:
    def diff(connection: Connection) -> list[Any]:
        return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))

    async with database.engine.connect() as connection:
        assert await connection.run_sync(diff) == []


async def test_downgrade_to_base_and_back(database: Database) -> None:
    # Alembic is synchronous and runs its own event loop in env.py, hence the thread.
    await asyncio.to_thread(command.downgrade, alembic_config(database.url), "base")
    assert await _tables(database) == {"alembic_version"}
    await database.upgrade()
    assert await _tables(database) == ALL_TABLES
