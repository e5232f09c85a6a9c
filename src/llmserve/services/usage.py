"""The usage ledger: every upstream call recorded off the request path, written in batches.

``record`` appends to an in-memory buffer and, with a journal (``usage.journal``, on by default),
to this process's journal file (services/usage_journal.py) before it returns, that is before the
answer it bills is sent: a process killed between two writes loses no row, the next start inserts
what the journal still holds (``recover``). A background writer inserts the buffer in batches (one
multi-row INSERT per transaction) every ``flush_interval_seconds``, or as soon as ``batch_size`` rows
wait, and empties the journal once the database has every row in it. When ``max_pending`` rows wait,
``record`` waits for the writer instead of dropping data (back-pressure). A failed write keeps its
rows and is retried on the next interval; ``close`` writes what is left, within a timeout, and
leaves what it could not write in the journal.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from llmserve.config import Settings, UsageSettings
from llmserve.errors import InvalidRequest
from llmserve.services.usage_journal import UsageJournal
from llmserve.storage.db import Database
from llmserve.storage.repositories import (
    CacheStatus,
    CallStatus,
    UsageGroupBy,
    UsageRecord,
    UsageRepository,
    UsageRow,
)

__all__ = ["CacheStatus", "CallStatus", "UsageGroupBy", "UsageLedger", "UsageRecord", "UsageRow"]

logger = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 10.0
REJECTED_KEPT = 1000
JOURNAL_DIRNAME = "usage-journal"


def journal_dir_for(settings: Settings) -> Path | None:
    """Where this server's usage journals live: ``usage.journal_dir``, else in the data dir."""
    if not settings.usage.journal:
        return None
    return settings.usage.journal_dir or settings.data_dir / JOURNAL_DIRNAME


def _as_utc(moment: datetime | None) -> datetime | None:
    """Naive datetimes (e.g. ``?start=2025-01-01``) are taken as UTC, the ledger's time zone."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _is_transient(exc: BaseException) -> bool:
    """Failures a later retry can cure: the database is down, unreachable, locked or restarting."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError | OSError | TimeoutError)


class UsageLedger:
    """Owns the buffer, the writer task and the write transactions. Built and closed by the lifespan."""

    def __init__(
        self,
        db: Database,
        settings: UsageSettings,
        *,
        close_timeout_s: float = CLOSE_TIMEOUT_S,
        journal_dir: Path | None = None,
    ) -> None:
        self._db = db
        self._journal = UsageJournal(journal_dir) if journal_dir is not None else None
        self._close_timeout_s = close_timeout_s
        self._interval = settings.flush_interval_seconds
        self._batch_size = settings.batch_size
        self._max_pending = settings.max_pending
        self._pending: deque[UsageRecord] = deque()
        self._accepted = 0  # records ever appended
        self._written = 0  # records ever committed; pending rows are the oldest accepted - written
        self._write_lock = asyncio.Lock()  # one writer at a time keeps batches in order
        self._wake = asyncio.Event()  # a full batch is waiting (or a recorder waits for room)
        self._room = asyncio.Event()  # set when fewer than max_pending rows wait
        self._room.set()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        # The latest rows the database refused for their content (each also logged in full).
        self.rejected: deque[UsageRecord] = deque(maxlen=REJECTED_KEPT)

    @property
    def pending(self) -> int:
        """Rows accepted but not yet committed."""
        return self._accepted - self._written

    def start(self) -> None:
        """Start the background writer; call from the running event loop (the app lifespan)."""
        if self._writer is None:
            self._writer = asyncio.create_task(self._run(), name="usage-ledger-writer")

    async def record(self, record: UsageRecord) -> None:
        """Queue and journal one row. O(1) and never suspends unless ``max_pending`` rows already wait.

        The row is queued and journaled before any wait, so a caller cancelled while waiting loses
        nothing, and journaled before this returns, so before the caller sends the answer.
        """
        pending = self._pending
        pending.append(record)
        self._accepted += 1
        if self._journal is not None:
            self._journal.append(record, self._accepted)
        if len(pending) >= self._batch_size:
            self._wake.set()
            if len(pending) >= self._max_pending:
                await self._wait_for_room()

    async def flush(self) -> None:
        """Write every row recorded before this call. Raises if the database refuses (rows are kept)."""
        goal = self._accepted
        async with self._write_lock:
            while self._written < goal and self._pending:
                await self._write_batch()

    async def recover(self) -> int:
        """Insert the rows journaled by processes that died before writing them; call at start.

        Returns how many rows the journals held (rows the database already has are skipped). If the
        database refuses, the journal is kept for the next start and the rows wait in the buffer.
        """
        if self._journal is None:
            return 0
        recovered = 0
        for orphan in self._journal.orphans():
            self._pending.extend(orphan.records)  # not journaled again: the orphan file still has them
            self._accepted += len(orphan.records)
            try:
                await self.flush()
            except Exception as exc:
                orphan.release()
                logger.error(
                    "Usage ledger: recovering %s failed, kept for the next start: %s", orphan.path, exc
                )
                break
            orphan.remove()
            recovered += len(orphan.records)
            if orphan.records:
                logger.warning(
                    "Usage ledger: %d rows recovered from %s (its process stopped before writing them)",
                    len(orphan.records),
                    orphan.path,
                )
        return recovered

    async def report(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        api_key: str | None = None,
        model: str | None = None,
        group_by: UsageGroupBy = "model",
    ) -> list[UsageRow]:
        """Totals per group over ``start <= time < end`` (UTC), including every call recorded so far."""
        start, end = _as_utc(start), _as_utc(end)
        if start is not None and end is not None and start > end:
            raise InvalidRequest("'start' must not be after 'end'", param="start")
        await self.flush()
        async with self._db.session(readonly=True) as session, session.begin():
            return await UsageRepository(session).report(
                start=start, end=end, api_key=api_key, model=model, group_by=group_by
            )

    async def spent(self, api_key: str, since: datetime) -> Decimal:
        """What ``api_key`` has spent since ``since`` (budgets seed their period counter from this)."""
        rows = await self.report(start=since, api_key=api_key, group_by="model")
        return sum((row.cost_usd for row in rows), Decimal(0))

    async def close(self) -> None:
        """Stop the writer and write what is still pending, giving up after ``close_timeout_s``."""
        self._closing = True
        self._wake.set()
        try:
            async with asyncio.timeout(self._close_timeout_s):
                if self._writer is not None:
                    await asyncio.shield(self._writer)
                await self.flush()
        except TimeoutError:
            logger.error("Usage ledger: %d rows not written at shutdown (timed out)", self.pending)
        except Exception as exc:  # shutdown must go on; say what was lost
            logger.error("Usage ledger: %d rows not written at shutdown: %s", self.pending, exc)
        finally:
            if self._writer is not None:
                self._writer.cancel()
                await asyncio.gather(self._writer, return_exceptions=True)
                self._writer = None
            if self._journal is not None:  # rows recorded after this go to a new file, for the next start
                self._journal.close(everything_committed=self.pending == 0)
            self._room.set()  # recorders still waiting now write for themselves

    async def _wait_for_room(self) -> None:
        while len(self._pending) >= self._max_pending:
            if self._writer is None or self._writer.done():
                # No writer (not started, or closed): the caller writes itself rather than wait forever.
                await self.flush()
                return
            self._room.clear()
            self._wake.set()
            await self._room.wait()

    async def _run(self) -> None:
        while not self._closing:
            try:
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            except TimeoutError:
                pass
            # Cleared before writing: rows recorded meanwhile set it again and the next round starts at once.
            self._wake.clear()
            try:
                await self.flush()
            except Exception as exc:  # the writer must outlive a database outage
                logger.warning(
                    "Usage ledger: writing %d rows failed, retrying in %.1fs: %s",
                    self.pending,
                    self._interval,
                    exc,
                )
                # Sleep out the interval even if recorders keep waking us: no hot loop while the DB is down.
                await asyncio.sleep(self._interval)

    async def _write_batch(self) -> None:
        pending = self._pending
        batch = [pending.popleft() for _ in range(min(self._batch_size, len(pending)))]
        try:
            try:
                await self._insert(batch)
            except Exception as exc:
                if _is_transient(exc):
                    raise
                await self._insert_one_by_one(batch, exc)
        except BaseException:
            pending.extendleft(reversed(batch))  # back at the head, in order, for the next try
            raise
        self._written += len(batch)
        if self._journal is not None:
            self._journal.committed(self._written, self._accepted)
        if len(pending) < self._max_pending:
            self._room.set()

    async def _insert(self, records: Sequence[UsageRecord]) -> None:
        async with self._db.session() as session, session.begin():
            await UsageRepository(session).add_many(records)

    async def _insert_one_by_one(self, batch: list[UsageRecord], batch_error: Exception) -> None:
        """A batch the database refuses for what is in it (not for being down): find the bad rows.

        Retrying it whole would fail forever and, through back-pressure, stall every request; so the
        good rows are written and each bad one is logged in full and set aside in ``rejected``.
        """
        logger.error(
            "Usage ledger: batch of %d refused (%s); writing rows one by one", len(batch), batch_error
        )
        while batch:
            try:
                await self._insert(batch[:1])
            except Exception as exc:
                if _is_transient(exc):
                    raise  # the caller puts the rest back
                logger.error("Usage ledger: row refused and set aside: %r: %s", batch[0], exc)
                self.rejected.append(batch[0])
            batch.pop(0)
            self._written += 1
