"""Alembic environment for llmserve. Driven by ``llmserve.storage.db.alembic_config``."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from llmserve.storage.db import create_engine, normalize_url
from llmserve.storage.models import Base

# Any fixed 64-bit number works; it only has to be the same for every replica.
MIGRATION_LOCK_KEY = 0x6C6C6D7365727665  # "llmserve"


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # SQLite can only ALTER through table copies.
        render_as_batch=connection.dialect.name == "sqlite",
        # Our engine emits BEGIN itself on SQLite too, so the whole upgrade is one transaction.
        transactional_ddl=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Replicas starting together would race to create the same tables; the lock makes the
            # second wait, then read the new version and find nothing to do. On SQLite the
            # BEGIN IMMEDIATE transaction serialises upgrades the same way.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


async def run_online(url: str) -> None:
    engine = create_engine(normalize_url(url), poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_migrations)
    finally:
        await engine.dispose()


def run_offline(url: str) -> None:
    context.configure(
        url=url,
        target_metadata=Base.metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("sqlalchemy.url is not set; build the config with alembic_config(url)")
    if context.is_offline_mode():
        run_offline(url)
    else:
        asyncio.run(run_online(url))


main()
