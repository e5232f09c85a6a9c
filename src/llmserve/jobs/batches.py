"""Batches: create, read, cancel (the API side) and prepare, finalise, expire (the worker side).

Status flow, as OpenAI's Batch API: ``validating`` (a prepare unit reads the file and writes one
queued unit per line) → ``in_progress`` → ``finalizing`` (a finalize unit writes the output and error
files) → ``completed``; ``failed`` when the file cannot be a batch; ``cancelling`` → ``cancelled``;
``expired`` past the completion window. Each step is a queued unit with a fixed id, so a step that
runs twice (redelivery, a worker killed mid-step) finds its work done and changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from llmserve.config import JobSettings
from llmserve.errors import Conflict, InvalidRequest, NotFound
from llmserve.jobs.batch_lines import (
    BATCH_ENDPOINTS,
    BatchFileError,
    jsonl,
    output_line,
    parse_input,
    succeeded,
)
from llmserve.jobs.files import OUTPUT_PURPOSE, new_file_row, read_content
from llmserve.jobs.units import (
    FINALIZE,
    LINE,
    PREPARE,
    finalize_id,
    line_id,
    new_batch_id,
    request_row,
    step_row,
)
from llmserve.storage.db import Database
from llmserve.storage.jobs_repository import (
    CANCELLED,
    COMPLETED,
    FAILED,
    QUEUED,
    BatchRepository,
    FileRepository,
    JobRepository,
)
from llmserve.storage.models import BatchRow, FileRow, utcnow

Kick = Callable[[Sequence[str]], Awaitable[None]]

VALIDATING = "validating"
IN_PROGRESS = "in_progress"
FINALIZING = "finalizing"
CANCELLING = "cancelling"
EXPIRED = "expired"
TERMINAL = (COMPLETED, FAILED, EXPIRED, CANCELLED)
_WINDOW = re.compile(r"^(\d{1,3})h$")
MAX_WINDOW_HOURS = 168
MAX_METADATA_KEYS = 16


@dataclass(frozen=True)
class BatchView:
    row: BatchRow
    completed: int
    failed: int


class BatchService:
    def __init__(self, database: Database, settings: JobSettings, kick: Kick) -> None:
        self._db = database
        self._settings = settings
        self._kick = kick

    # --- the API side -------------------------------------------------------------------------

    async def create(
        self,
        *,
        owner: str,
        key_id: str | None,
        input_file_id: str,
        endpoint: str,
        completion_window: str,
        metadata: dict[str, Any] | None,
    ) -> BatchView:
        if endpoint not in BATCH_ENDPOINTS:
            raise InvalidRequest(
                f"endpoint must be one of {list(BATCH_ENDPOINTS)}, not {endpoint!r}", param="endpoint"
            )
        window = _window_hours(completion_window)
        _check_metadata(metadata)
        now = utcnow()
        batch_id = new_batch_id()
        row = BatchRow(
            id=batch_id,
            owner=owner,
            key_id=key_id,
            endpoint=endpoint,
            input_file_id=input_file_id,
            completion_window=completion_window,
            metadata_=metadata,
            status=VALIDATING,
            total=0,
            created_at=now,
            expires_at=now + timedelta(hours=window),
        )
        async with self._db.session() as session, session.begin():
            upload = await FileRepository(session).get(input_file_id)
            if upload is None or upload.owner != owner:
                raise NotFound(f"No such file: {input_file_id}", param="input_file_id", code="file_not_found")
            if upload.purpose != "batch":
                raise InvalidRequest(
                    f"File {input_file_id} has purpose {upload.purpose!r}; a batch needs purpose 'batch'",
                    param="input_file_id",
                )
            BatchRepository(session).add(row)
            JobRepository(session).add_all([step_row(PREPARE, batch_id, owner, now)])
        await self._kick([step_row(PREPARE, batch_id, owner, now).id])
        return BatchView(row, 0, 0)

    async def get(self, owner: str, batch_id: str) -> BatchView:
        async with self._db.session(readonly=True) as session, session.begin():
            row = await BatchRepository(session).get(batch_id)
            if row is None or row.owner != owner:
                raise NotFound(f"No such batch: {batch_id}", param="batch_id", code="batch_not_found")
            counts = await JobRepository(session).line_counts(batch_id)
        return BatchView(row, counts.get(COMPLETED, 0), counts.get(FAILED, 0))

    async def list_for(self, owner: str, after: str | None, limit: int) -> list[BatchView]:
        async with self._db.session(readonly=True) as session, session.begin():
            rows = await BatchRepository(session).list_for(owner, after, limit)
            counts = await JobRepository(session).line_counts_many([row.id for row in rows])
        return [
            BatchView(row, counts[row.id].get(COMPLETED, 0), counts[row.id].get(FAILED, 0)) for row in rows
        ]

    async def cancel(self, owner: str, batch_id: str) -> BatchView:
        now = utcnow()
        kick: list[str] = []
        async with self._db.session() as session, session.begin():
            batches = BatchRepository(session)
            row = await batches.get(batch_id)
            if row is None or row.owner != owner:
                raise NotFound(f"No such batch: {batch_id}", param="batch_id", code="batch_not_found")
            if row.status in (CANCELLING, CANCELLED):
                pass
            elif row.status in (VALIDATING, IN_PROGRESS):
                cancelling = {"status": CANCELLING, "cancelling_at": now}
                if not await batches.transition(batch_id, [row.status], cancelling):
                    raise Conflict(f"Batch {batch_id} changed state meanwhile; ask again")
                kick = await self._stop_lines(session, row, now, "batch_cancelled", "The batch was cancelled")
            else:
                raise Conflict(f"Batch {batch_id} is already {row.status}; it cannot be cancelled")
        await self._kick(kick)
        return await self.get(owner, batch_id)

    # --- the worker side ----------------------------------------------------------------------

    async def prepare(self, batch_id: str) -> list[str]:
        """Reads the input file into one queued unit per line; returns the units to kick."""
        now = utcnow()
        async with self._db.session() as session, session.begin():
            batches, jobs = BatchRepository(session), JobRepository(session)
            row = await batches.get(batch_id)
            if row is None:
                return []
            if row.status == CANCELLING:
                return await self._finalize_unit(session, row, now)
            if row.status == IN_PROGRESS:  # prepared before (a redelivered prepare): kick what waits
                return await jobs.queued_line_ids(batch_id)
            if row.status != VALIDATING:
                return []
            content = await read_content(session, row.input_file_id)
            try:
                if content is None:
                    raise BatchFileError(f"The input file {row.input_file_id} was deleted", "file_not_found")
                lines = parse_input(content, row.endpoint, self._settings.max_batch_lines)
            except BatchFileError as exc:
                errors = [{"code": exc.code, "message": str(exc), "line": None, "param": "input_file_id"}]
                await batches.transition(
                    batch_id, [VALIDATING], {"status": FAILED, "failed_at": now, "errors": errors}
                )
                return []
            # The transition first: it locks the batch row, so a cancel or an expiry racing this
            # prepare either happened before (we lose it and queue nothing) or waits and then sees
            # the lines it has to stop.
            started = {"status": IN_PROGRESS, "in_progress_at": now, "total": len(lines)}
            if not await batches.transition(batch_id, [VALIDATING], started):
                return []
            priority = self._settings.batch_priority
            jobs.add_all(
                request_row(
                    unit_id=line_id(batch_id, line.line),
                    kind=LINE,
                    owner=row.owner,
                    key_id=row.key_id,
                    endpoint=row.endpoint,
                    body=line.body,
                    priority=priority,
                    now=now,
                    batch_id=batch_id,
                    line=line.line,
                    custom_id=line.custom_id,
                )
                for line in lines
            )
            await session.flush()
            invalid = [line for line in lines if line.error is not None]
            for line in invalid:
                await jobs.finish(
                    line_id(batch_id, line.line),
                    {"status": FAILED, "error": line.error, "finished_at": now, "started_at": now},
                )
            queued = [line_id(batch_id, line.line) for line in lines if line.error is None]
            if not queued:
                return await self._finalize_unit(session, row, now)
            return queued

    async def line_finished(self, batch_id: str) -> list[str]:
        """After a line ends: when none is left unfinished, the finalize unit (to kick)."""
        now = utcnow()
        try:
            async with self._db.session() as session, session.begin():
                row = await BatchRepository(session).get(batch_id)
                if row is None or row.status not in (IN_PROGRESS, CANCELLING):
                    return []
                if await JobRepository(session).unfinished_lines(batch_id):
                    return []
                return await self._finalize_unit(session, row, now)
        except IntegrityError:  # another worker's last line added it first
            return []

    async def finalize(self, batch_id: str) -> None:
        """Writes the output and error files and the final status; safe to run again."""
        now = utcnow()
        async with self._db.session() as session, session.begin():
            batches = BatchRepository(session)
            row = await batches.get(batch_id)
            if row is None or row.status in TERMINAL:
                return
            if row.status == IN_PROGRESS:
                await batches.transition(
                    batch_id, [IN_PROGRESS], {"status": FINALIZING, "finalizing_at": now}
                )
        async with self._db.session() as session, session.begin():
            batches = BatchRepository(session)
            row = await batches.get(batch_id)
            if row is None or row.status in TERMINAL:
                return
            lines = await JobRepository(session).lines(batch_id)
            outputs = [output_line(line) for line in lines if succeeded(line)]
            errors = [output_line(line) for line in lines if not succeeded(line) and line.status != QUEUED]
            written: list[tuple[FileRow, bytes]] = []
            values: dict[str, Any] = {}
            if outputs:
                content = jsonl(outputs)
                out = new_file_row(row.owner, OUTPUT_PURPOSE, f"{batch_id}_output.jsonl", content)
                written.append((out, content))
                values["output_file_id"] = out.id
            if errors:
                content = jsonl(errors)
                err = new_file_row(row.owner, OUTPUT_PURPOSE, f"{batch_id}_error.jsonl", content)
                written.append((err, content))
                values["error_file_id"] = err.id
            if row.status == CANCELLING:
                values.update(status=CANCELLED, cancelled_at=now)
            elif row.expired_at is not None:
                values.update(status=EXPIRED)
            else:
                values.update(status=COMPLETED, completed_at=now)
            # Files only with the winning transition: a finalize that raced another and lost must
            # not leave a second, unreferenced output file in the owner's file list.
            if await batches.transition(batch_id, [row.status], values):
                files = FileRepository(session)
                for file_row, content in written:
                    await files.add(file_row, content)

    async def finalize_stalled(self) -> list[str]:
        """Finalize units for running batches that have no unfinished line left."""
        async with self._db.session(readonly=True) as session, session.begin():
            batch_ids = await BatchRepository(session).ids_in([IN_PROGRESS, CANCELLING])
        kick: list[str] = []
        for batch_id in batch_ids:
            kick += await self.line_finished(batch_id)
        return kick

    async def expire_overdue(self) -> list[str]:
        """Batches past their completion window: stop their queued lines, then finalise as expired."""
        now = utcnow()
        kick: list[str] = []
        async with self._db.session() as session, session.begin():
            batches = BatchRepository(session)
            for batch_id in await batches.overdue_ids(now, [VALIDATING, IN_PROGRESS]):
                row = await batches.get(batch_id)
                if row is None or row.expired_at is not None:
                    continue
                row.expired_at = now
                if row.status == VALIDATING:
                    await batches.transition(
                        batch_id, [VALIDATING], {"status": IN_PROGRESS, "in_progress_at": now}
                    )
                kick += await self._stop_lines(session, row, now, "batch_expired", "The batch expired")
        await self._kick(kick)
        return kick

    async def _stop_lines(
        self, session: Any, row: BatchRow, now: datetime, code: str, message: str
    ) -> list[str]:
        jobs = JobRepository(session)
        await jobs.cancel_queued_lines(row.id, now, {"code": code, "message": message})
        if await jobs.unfinished_lines(row.id):
            return []  # the last running line to finish adds the finalize unit
        return await self._finalize_unit(session, row, now)

    async def _finalize_unit(self, session: AsyncSession, row: BatchRow, now: datetime) -> list[str]:
        jobs = JobRepository(session)
        unit = step_row(FINALIZE, row.id, row.owner, now)
        if not await jobs.exists(unit.id):
            jobs.add_all([unit])
            await session.flush()
        return [finalize_id(row.id)]


def _window_hours(window: str) -> int:
    match = _WINDOW.match(window or "")
    if match is None or not 1 <= int(match.group(1)) <= MAX_WINDOW_HOURS:
        raise InvalidRequest(
            f"completion_window must be like '24h' (1 to {MAX_WINDOW_HOURS} hours), not {window!r}",
            param="completion_window",
        )
    return int(match.group(1))


def _check_metadata(metadata: dict[str, Any] | None) -> None:
    if metadata is None:
        return
    if len(metadata) > MAX_METADATA_KEYS or not all(
        isinstance(k, str) and len(k) <= 64 and isinstance(v, str) and len(v) <= 512
        for k, v in metadata.items()
    ):
        raise InvalidRequest(
            f"metadata holds at most {MAX_METADATA_KEYS} string pairs (keys ≤ 64, values ≤ 512 characters)",
            param="metadata",
        )
