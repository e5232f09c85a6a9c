"""Engine, sessions and schema upgrades for SQLite (embedded default) and PostgreSQL (scale-out)."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, Pool

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# How long a SQLite writer waits for another writer's lock before "database is locked".
SQLITE_BUSY_TIMEOUT_S = 30.0
PING_TIMEOUT_S = 5.0
# Execution option that marks a connection as read-only, so SQLite can skip the write lock.
_READONLY_OPTION = "llmserve_readonly"


def normalize_url(url: str) -> URL:
    """Map the URL spellings users paste (Heroku-style ``postgres://``, bare dialects) to async drivers."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+asyncpg")
        # asyncpg spells libpq's sslmode as ssl.
        if "sslmode" in parsed.query:
            query = dict(parsed.query)
            query["ssl"] = query.pop("sslmode")
            parsed = parsed.set(query=query)
    elif parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    return parsed


def _sqlite_file(url: URL) -> Path | None:
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):  # URI form: leave it to the user
        return None
    return Path(database)


def _install_sqlite_hooks(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Take BEGIN away from the sqlite3 driver (it skips it for SELECT and DDL) and emit it
        # ourselves in on_begin, so transactions and migrations are real transactions.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            # WAL: readers never block the writer. NORMAL sync is durable across app crashes in WAL.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection: Connection) -> None:
        # A deferred transaction that reads and then writes fails with SQLITE_BUSY (no retry) when
        # another writer commits in between; IMMEDIATE takes the write lock up front and queues
        # writers behind busy_timeout instead. Read-only sessions keep the cheap deferred BEGIN.
        readonly = connection.get_execution_options().get(_READONLY_OPTION, False)
        connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


def create_engine(url: str | URL, *, echo: bool = False, poolclass: type[Pool] | None = None) -> AsyncEngine:
    parsed = normalize_url(url) if isinstance(url, str) else url
    kwargs: dict[str, Any] = {"echo": echo}
    if poolclass is not None:
        kwargs["poolclass"] = poolclass
    if parsed.get_backend_name() == "postgresql":
        # Replicas sit behind load balancers that drop idle connections; check before use.
        kwargs["pool_pre_ping"] = True
        if poolclass is None:
            # A job worker runs 16 units at once by default, each with a session at a time: with
            # SQLAlchemy's default 5 kept connections the rest were opened and closed per use
            # (3% of a worker's CPU in connects alone).
            kwargs.update(pool_size=16, max_overflow=16)
    engine = create_async_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        _install_sqlite_hooks(engine)
    return engine


def alembic_config(url: str) -> Config:
    """An Alembic config built in code, so upgrades work from a wheel and from any directory."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would mangle a '%' in a URL-encoded password.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


# Alembic publishes the running migration through module globals (alembic.context, alembic.op), so
# two upgrades in one process must not overlap. Across processes, migrations/env.py serialises them.
_ALEMBIC_LOCK = threading.Lock()


def _upgrade_blocking(url: str, revision: str) -> None:
    # Runs in a worker thread with its own event loop and engine: Alembic is synchronous, imports
    # migration scripts from disk, and must not stall the server's loop.
    with _ALEMBIC_LOCK:
        command.upgrade(alembic_config(url), revision)


class _LazyLock:
    """An asyncio.Lock made on first use, inside the loop that uses it (Database is built earlier)."""

    def __init__(self) -> None:
        self._lock: asyncio.Lock | None = None

    def get(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock


class _SerializedWriteSession(AsyncSession):
    """A SQLite write session that queues on an in-process lock before it begins.

    SQLite has one writer at a time. Left to SQLite, concurrent writers of one process wait in its
    busy handler, which sleeps in growing steps (up to 100 ms) and so hands the lock over long after
    it was freed: with 16 batch lines writing at once, throughput fell to ~30 lines/s. Queued here,
    the next writer starts the moment the previous one ends. Other processes on the same file still
    queue on busy_timeout. Write sessions must not nest (the inner one would wait for the outer).
    """

    def __init__(self, *args: Any, write_lock: _LazyLock, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._write_lock = write_lock
        self._holding = False

    async def __aenter__(self) -> _SerializedWriteSession:
        await self._write_lock.get().acquire()
        self._holding = True
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await super().__aexit__(*exc)
        finally:
            if self._holding:
                self._holding = False
                self._write_lock.get().release()


class Database:
    """One engine and session factory per process; built in the app lifespan, disposed on shutdown."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        parsed = normalize_url(url)
        self.url: str = parsed.render_as_string(hide_password=False)
        self.backend: str = parsed.get_backend_name()
        sqlite_file = _sqlite_file(parsed)
        if sqlite_file is not None:
            sqlite_file.parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(parsed, echo=echo)
        self._sessions: async_sessionmaker[AsyncSession]
        if self.backend == "sqlite":
            self._sessions = async_sessionmaker(
                self.engine, expire_on_commit=False, class_=_SerializedWriteSession, write_lock=_LazyLock()
            )
        else:
            self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._readonly_sessions = async_sessionmaker(
            self.engine.execution_options(**{_READONLY_OPTION: True}), expire_on_commit=False
        )

    def __repr__(self) -> str:
        return f"Database({make_url(self.url)!r})"  # URL repr masks the password

    def session(self, *, readonly: bool = False) -> AsyncSession:
        """A new unit of work. ``readonly=True`` lets SQLite readers skip the writer queue."""
        return self._readonly_sessions() if readonly else self._sessions()

    async def upgrade(self, revision: str = "head") -> None:
        """Apply migrations up to ``revision``; a no-op when the schema is current."""
        logger.info("Upgrading database schema to %s", revision)
        await asyncio.to_thread(_upgrade_blocking, self.url, revision)

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(PING_TIMEOUT_S):
                async with self._readonly_sessions() as session:
                    await session.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            logger.warning("Database ping failed: %s", exc)
            return False
        return True

    async def dispose(self) -> None:
        await self.engine.dispose()
