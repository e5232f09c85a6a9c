"""SQL for jobs, batches and files. Repositories never commit: the jobs services own transactions.

Every state change is a conditional UPDATE (``WHERE status IN (...)``) whose row count says whether
this caller won, so two workers, a worker and a canceller, or a redelivered message and the original
can race without locks and without a second answer being written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from llmserve.storage.models import FILE_CHUNK_BYTES, BatchRow, FileChunkRow, FileRow, JobRow

QUEUED = "queued"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
UNFINISHED = (QUEUED, RUNNING)
FINISHED = (COMPLETED, FAILED, CANCELLED)


# The UPDATEs here never touch rows this session holds, so the ORM need not evaluate them against
# its identity map (the default 'auto' synchronisation cost more CPU than the statements).
_NO_SYNC = {"synchronize_session": False}


def _rowcount(result: Any) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


class JobRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add_all(self, rows: Iterable[JobRow]) -> None:
        self.session.add_all(list(rows))

    async def get(self, job_id: str) -> JobRow | None:
        return await self.session.get(JobRow, job_id)

    async def exists(self, job_id: str) -> bool:
        found = await self.session.scalar(select(JobRow.id).where(JobRow.id == job_id))
        return found is not None

    async def claim(self, job_id: str, worker: str, now: datetime, lease_until: datetime) -> JobRow | None:
        """Takes a queued unit, or a running one whose worker stopped renewing its lease; the row
        as claimed, in the same round trip (UPDATE ... RETURNING), or None when it was not free."""
        result = await self.session.execute(
            update(JobRow)
            .where(JobRow.id == job_id, _claimable(now))
            .values(
                status=RUNNING,
                lease_owner=worker,
                lease_until=lease_until,
                attempts=JobRow.attempts + 1,
                started_at=func.coalesce(JobRow.started_at, now),
            )
            .returning(JobRow)
            .execution_options(**_NO_SYNC)
        )
        return result.scalar_one_or_none()

    async def claimable_ids(self, now: datetime, limit: int) -> list[str]:
        """Oldest first within the best priority (lowest number), as the admission queue orders."""
        rows = await self.session.scalars(
            select(JobRow.id)
            .where(_claimable(now))
            .order_by(JobRow.priority, JobRow.created_at, JobRow.line)
            .limit(limit)
        )
        return list(rows)

    async def renew(self, job_id: str, worker: str, lease_until: datetime) -> bool:
        """False when the unit is no longer this worker's: cancelled, finished, or taken over."""
        result = await self.session.execute(
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.status == RUNNING, JobRow.lease_owner == worker)
            .values(lease_until=lease_until)
            .execution_options(**_NO_SYNC)
        )
        return _rowcount(result) == 1

    async def finish(self, job_id: str, values: dict[str, Any]) -> bool:
        """Writes the outcome once: only a unit that is still unfinished takes it."""
        result = await self.session.execute(
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.status.in_(UNFINISHED))
            .values(lease_owner=None, lease_until=None, **values)
            .execution_options(**_NO_SYNC)
        )
        return _rowcount(result) == 1

    async def release(self, job_id: str, worker: str, error: dict[str, Any] | None) -> bool:
        """Back to the queue (a retryable failure); only by the worker that holds it."""
        result = await self.session.execute(
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.status == RUNNING, JobRow.lease_owner == worker)
            .values(status=QUEUED, lease_owner=None, lease_until=None, error=error)
            .execution_options(**_NO_SYNC)
        )
        return _rowcount(result) == 1

    async def expired_lease_ids(self, now: datetime, limit: int) -> list[str]:
        rows = await self.session.scalars(
            select(JobRow.id)
            .where(JobRow.status == RUNNING, JobRow.lease_until < now)
            .order_by(JobRow.lease_until)
            .limit(limit)
        )
        return list(rows)

    async def queued_ids_since(self, created_before: datetime, limit: int) -> list[str]:
        rows = await self.session.scalars(
            select(JobRow.id)
            .where(JobRow.status == QUEUED, JobRow.created_at < created_before)
            .order_by(JobRow.priority, JobRow.created_at)
            .limit(limit)
        )
        return list(rows)

    async def cancel(self, job_id: str, now: datetime) -> bool:
        result = await self.session.execute(
            update(JobRow)
            .where(JobRow.id == job_id, JobRow.status.in_(UNFINISHED))
            .values(status=CANCELLED, finished_at=now, lease_owner=None, lease_until=None)
            .execution_options(**_NO_SYNC)
        )
        return _rowcount(result) == 1

    async def cancel_queued_lines(self, batch_id: str, now: datetime, error: dict[str, Any]) -> int:
        result = await self.session.execute(
            update(JobRow)
            .where(JobRow.batch_id == batch_id, JobRow.kind == "line", JobRow.status == QUEUED)
            .values(status=CANCELLED, finished_at=now, error=error)
            .execution_options(**_NO_SYNC)
        )
        return _rowcount(result)

    async def line_counts(self, batch_id: str) -> dict[str, int]:
        rows = await self.session.execute(
            select(JobRow.status, func.count())
            .where(JobRow.batch_id == batch_id, JobRow.kind == "line")
            .group_by(JobRow.status)
        )
        return {status: int(count) for status, count in rows}

    async def line_counts_many(self, batch_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {batch_id: {} for batch_id in batch_ids}
        if not batch_ids:
            return counts
        rows = await self.session.execute(
            select(JobRow.batch_id, JobRow.status, func.count())
            .where(JobRow.batch_id.in_(batch_ids), JobRow.kind == "line")
            .group_by(JobRow.batch_id, JobRow.status)
        )
        for batch_id, status, count in rows:
            if batch_id is not None:
                counts[batch_id][status] = int(count)
        return counts

    async def unfinished_lines(self, batch_id: str) -> int:
        count = await self.session.scalar(
            select(func.count())
            .select_from(JobRow)
            .where(JobRow.batch_id == batch_id, JobRow.kind == "line", JobRow.status.in_(UNFINISHED))
        )
        return int(count or 0)

    async def lines(self, batch_id: str) -> list[JobRow]:
        rows = await self.session.scalars(
            select(JobRow).where(JobRow.batch_id == batch_id, JobRow.kind == "line").order_by(JobRow.line)
        )
        return list(rows)

    async def queued_line_ids(self, batch_id: str) -> list[str]:
        rows = await self.session.scalars(
            select(JobRow.id)
            .where(JobRow.batch_id == batch_id, JobRow.kind == "line", JobRow.status == QUEUED)
            .order_by(JobRow.line)
        )
        return list(rows)

    async def delete_expired(self, now: datetime) -> int:
        """Finished async jobs past their retention; a queued or running one is never taken away."""
        result = await self.session.execute(
            delete(JobRow).where(
                JobRow.batch_id.is_(None),
                JobRow.status.in_(FINISHED),
                JobRow.expires_at.is_not(None),
                JobRow.expires_at < now,
            )
        )
        return _rowcount(result)


def _claimable(now: datetime) -> Any:
    return or_(
        JobRow.status == QUEUED,
        and_(JobRow.status == RUNNING, JobRow.lease_until.is_not(None), JobRow.lease_until < now),
    )


class BatchRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, row: BatchRow) -> None:
        self.session.add(row)

    async def get(self, batch_id: str) -> BatchRow | None:
        return await self.session.get(BatchRow, batch_id)

    async def list_for(self, owner: str, after: str | None, limit: int) -> list[BatchRow]:
        query = select(BatchRow).where(BatchRow.owner == owner)
        if after is not None:
            anchor = await self.session.get(BatchRow, after)
            if anchor is not None and anchor.owner == owner:
                query = query.where(
                    or_(
                        BatchRow.created_at < anchor.created_at,
                        and_(BatchRow.created_at == anchor.created_at, BatchRow.id < anchor.id),
                    )
                )
        rows = await self.session.scalars(
            query.order_by(BatchRow.created_at.desc(), BatchRow.id.desc()).limit(limit)
        )
        return list(rows)

    async def transition(self, batch_id: str, from_status: Sequence[str], values: dict[str, Any]) -> bool:
        result = await self.session.execute(
            update(BatchRow).where(BatchRow.id == batch_id, BatchRow.status.in_(from_status)).values(**values)
        )
        return _rowcount(result) == 1

    async def overdue_ids(self, now: datetime, statuses: Sequence[str]) -> list[str]:
        rows = await self.session.scalars(
            select(BatchRow.id).where(BatchRow.status.in_(statuses), BatchRow.expires_at < now)
        )
        return list(rows)

    async def ids_in(self, statuses: Sequence[str]) -> list[str]:
        rows = await self.session.scalars(select(BatchRow.id).where(BatchRow.status.in_(statuses)))
        return list(rows)


class FileRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, row: FileRow, content: bytes) -> None:
        self.session.add(row)
        await self.session.flush()  # the file row first: its chunks refer to it
        step = FILE_CHUNK_BYTES
        self.session.add_all(
            FileChunkRow(file_id=row.id, seq=seq, data=content[start : start + step])
            for seq, start in enumerate(range(0, len(content), step))
        )

    async def get(self, file_id: str) -> FileRow | None:
        return await self.session.get(FileRow, file_id)

    async def list_for(self, owner: str, purpose: str | None, limit: int) -> list[FileRow]:
        # Listing never loads the bytes.
        query = select(FileRow).where(FileRow.owner == owner)
        if purpose is not None:
            query = query.where(FileRow.purpose == purpose)
        rows = await self.session.scalars(
            query.order_by(FileRow.created_at.desc(), FileRow.id.desc()).limit(limit)
        )
        return list(rows)

    async def delete(self, file_id: str) -> None:
        # The chunks first: nothing relies on the backend honouring ON DELETE CASCADE.
        await self.session.execute(delete(FileChunkRow).where(FileChunkRow.file_id == file_id))
        await self.session.execute(delete(FileRow).where(FileRow.id == file_id))

    async def lock_owner_files(self, owner: str) -> None:
        """Hold the tenant's file quota until this transaction ends, so two concurrent uploads cannot
        both see room for one. SQLite needs nothing: a write transaction begins IMMEDIATE, one writer
        at a time across processes. PostgreSQL (READ COMMITTED) would let both read the same sum: a
        transaction-scoped advisory lock on the owner queues them, on every replica."""
        if self.session.get_bind().dialect.name == "postgresql":
            await self.session.execute(select(func.pg_advisory_xact_lock(func.hashtext(owner))))

    async def stored_bytes(self, owner: str) -> int:
        """What the tenant's files (uploads and batch outputs) take, for the storage quota."""
        total = await self.session.scalar(
            select(func.coalesce(func.sum(FileRow.bytes), 0)).where(FileRow.owner == owner)
        )
        return int(total or 0)

    async def read_chunk(self, file_id: str, seq: int) -> bytes | None:
        """The ``seq``-th ``FILE_CHUNK_BYTES`` of the content (None past its end, or once deleted)."""
        query = select(FileChunkRow.data).where(FileChunkRow.file_id == file_id, FileChunkRow.seq == seq)
        return await self.session.scalar(query)

    async def read_all(self, file_id: str) -> bytes | None:
        """The whole content (a batch's input is parsed whole); None for a missing file."""
        if await self.session.get(FileRow, file_id) is None:
            return None
        query = select(FileChunkRow.data).where(FileChunkRow.file_id == file_id).order_by(FileChunkRow.seq)
        return b"".join(await self.session.scalars(query))
