"""Database fixtures: every storage test runs against SQLite and the real PostgreSQL server.

PostgreSQL: one throwaway database per test session (``llmserve_test_<hex>``), emptied before each
test and dropped at the end. Override the server with ``LLMSERVE_TEST_POSTGRES_URL`` (an admin URL
whose user may CREATE DATABASE). If no server answers, tests skip with the reason, or fail under
``CI=true``, where a missing service is a broken pipeline rather than a developer laptop.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from llmserve.config import sqlite_url_for
from llmserve.storage.db import Database, alembic_config, normalize_url

PG_HOST = "127.0.0.1:5432"
PG_CONNECT_TIMEOUT_S = 5


@dataclass(frozen=True)
class PostgresServer:
    admin_url: str | None  # None when unreachable
    problem: str = ""


def _admin_url_candidates() -> list[str]:
    if explicit := os.environ.get("LLMSERVE_TEST_POSTGRES_URL"):
        return [normalize_url(explicit).render_as_string(hide_password=False)]
    users = dict.fromkeys(["postgres", getpass.getuser()])  # ordered, deduplicated
    return [f"postgresql+asyncpg://{user}@{PG_HOST}/test" for user in users]


def _execute_autocommit_blocking(url: str, *statements: str) -> None:
    # Its own thread and loop: session fixtures are set up from inside whichever test loop asks first.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, _execute_autocommit(url, *statements)).result()


async def _execute_autocommit(url: str, *statements: str) -> None:
    engine = create_async_engine(
        url,
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
        connect_args={"timeout": PG_CONNECT_TIMEOUT_S},
    )
    try:
        async with engine.connect() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


def _find_server() -> PostgresServer:
    problems = []
    for url in _admin_url_candidates():
        try:
            _execute_autocommit_blocking(url, "SELECT 1")
        except (OSError, TimeoutError, SQLAlchemyError) as exc:
            problems.append(f"{make_url(url)!r}: {type(exc).__name__}: {exc}")
            continue
        return PostgresServer(admin_url=url)
    return PostgresServer(admin_url=None, problem="PostgreSQL unreachable; " + "; ".join(problems))


@pytest.fixture(scope="session")
def postgres_database_url() -> Iterator[str | PostgresServer]:
    """URL of a throwaway database for this session, or the server status if there is none."""
    server = _find_server()
    if server.admin_url is None:
        yield server
        return
    name = f"llmserve_test_{uuid.uuid4().hex[:12]}"
    _execute_autocommit_blocking(server.admin_url, f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server.admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        _execute_autocommit_blocking(server.admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend (no tables, not even Alembic's)."""
    if request.param == "sqlite":
        return sqlite_url_for(tmp_path / "data")
    # Looked up lazily so SQLite-only runs (-m "not postgres") never probe the server.
    postgres = request.getfixturevalue("postgres_database_url")
    if isinstance(postgres, PostgresServer):
        _unavailable(postgres.problem)
    await _execute_autocommit(postgres, "DROP SCHEMA IF EXISTS public CASCADE", "CREATE SCHEMA public")
    return str(postgres)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A migrated database, disposed after the test."""
    db = Database(database_url)
    await db.upgrade()
    try:
        yield db
    finally:
        await db.dispose()


def migration_head() -> str:
    """The newest Alembic revision in the source tree."""
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


async def current_revision(db: Database) -> str | None:
    """The Alembic revision ``db`` is at (None before the first upgrade)."""
    async with db.engine.connect() as connection:
        return await connection.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
