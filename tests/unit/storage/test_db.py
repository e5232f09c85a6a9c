"""Engine and session plumbing: URLs, SQLite pragmas, ping, sessions that share one transaction."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from llmserve.config import sqlite_url_for
from llmserve.storage.db import Database, normalize_url


def test_sqlite_url_for_is_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert sqlite_url_for(Path("data")) == f"sqlite+aiosqlite:///{tmp_path.resolve()}/data/llmserve.db"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@db:5432/app", "postgresql+asyncpg://u:p@db:5432/app"),
        ("postgresql://u@db/app", "postgresql+asyncpg://u@db/app"),
        ("postgresql+asyncpg://u@db/app", "postgresql+asyncpg://u@db/app"),
        ("postgres://u@db/app?sslmode=require", "postgresql+asyncpg://u@db/app?ssl=require"),
        ("sqlite:////var/lib/llmserve.db", "sqlite+aiosqlite:////var/lib/llmserve.db"),
    ],
)
def test_normalize_url_picks_async_drivers(given: str, expected: str) -> None:
    assert normalize_url(given).render_as_string(hide_password=False) == expected


async def test_database_keeps_password_but_repr_hides_it() -> None:
    db = Database("postgres://app:s3cret@127.0.0.1:1/app")
    try:
        assert db.url == "postgresql+asyncpg://app:s3cret@127.0.0.1:1/app"
        assert "s3cret" not in repr(db)
    finally:
        await db.dispose()


async def test_sqlite_creates_data_dir_and_enables_wal_and_foreign_keys(tmp_path: Path) -> None:
    data_dir = tmp_path / "not" / "yet" / "there"
    db = Database(sqlite_url_for(data_dir))
    try:
        assert data_dir.is_dir()
        async with db.session() as session:
            assert await session.scalar(text("PRAGMA journal_mode")) == "wal"
            assert await session.scalar(text("PRAGMA foreign_keys")) == 1
        assert (data_dir / "llmserve.db").exists()
    finally:
        await db.dispose()


async def test_ping_reports_a_live_database(database: Database) -> None:
    assert await database.ping() is True


async def test_ping_reports_an_unreachable_server() -> None:
    db = Database("postgresql://nobody@127.0.0.1:1/none")  # port 1: nothing listens
    try:
        assert await db.ping() is False
    finally:
        await db.dispose()


async def test_uncommitted_session_leaves_no_trace(database: Database) -> None:
    async with database.session() as session:
        await session.execute(text("CREATE TABLE IF NOT EXISTS scratch (v INTEGER)"))
        await session.commit()
    async with database.session() as session:
        await session.execute(text("INSERT INTO scratch (v) VALUES (1)"))
        # no commit: leaving the block must roll back
    async with database.session(readonly=True) as session:
        assert await session.scalar(text("SELECT count(*) FROM scratch")) == 0
