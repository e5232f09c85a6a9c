"""BatchService and the jobs repository on both backends: expiry, idempotent steps, and claims.

Every batch step may run twice (a redelivered message, two workers racing, a worker killed
mid-step); these tests run each step twice, or concurrently, and check that what a user sees (the
lines, the output file, the batch status, a line's answer) comes out once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select, update

from llmserve.config import JobSettings
from llmserve.jobs.batches import BatchService
from llmserve.jobs.files import OUTPUT_PURPOSE, FileService
from llmserve.jobs.units import REQUEST, finalize_id, line_id, new_job_id, request_row
from llmserve.storage.db import Database
from llmserve.storage.jobs_repository import CANCELLED, COMPLETED, QUEUED, RUNNING, JobRepository
from llmserve.storage.models import BatchRow, JobRow, utcnow

OWNER = "tenant-a"
ENDPOINT = "/v1/chat/completions"
LEASE = timedelta(seconds=30)


class KickRecorder:
    """The broker's kick, written down: which unit ids were handed to workers."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    async def __call__(self, ids: Sequence[str]) -> None:
        self.ids.extend(ids)


@pytest.fixture
def kicks() -> KickRecorder:
    return KickRecorder()


@pytest.fixture
def service(database: Database, kicks: KickRecorder) -> BatchService:
    return BatchService(database, JobSettings(), kicks)


def input_file(lines: int) -> bytes:
    return b"".join(
        orjson.dumps(
            {
                "custom_id": f"req-{n}",
                "method": "POST",
                "url": ENDPOINT,
                "body": {"model": "tiny", "messages": [{"role": "user", "content": f"question {n}"}]},
            }
        )
        + b"\n"
        for n in range(1, lines + 1)
    )


async def new_batch(database: Database, service: BatchService, lines: int) -> str:
    upload = await FileService(database, 1_000_000).create(OWNER, "batch", "in.jsonl", input_file(lines))
    view = await service.create(
        owner=OWNER,
        key_id=None,
        input_file_id=upload.id,
        endpoint=ENDPOINT,
        completion_window="24h",
        metadata=None,
    )
    return view.row.id


async def prepared_batch(database: Database, service: BatchService, lines: int) -> str:
    batch_id = await new_batch(database, service, lines)
    assert len(await service.prepare(batch_id)) == lines
    return batch_id


def answer(n: int) -> dict[str, Any]:
    return {"object": "chat.completion", "choices": [{"message": {"content": f"answer {n}"}}]}


async def answer_line(database: Database, batch_id: str, n: int) -> None:
    """What a worker does for one line: claim it, store a 200."""
    unit_id, now = line_id(batch_id, n), utcnow()
    async with database.session() as session, session.begin():
        jobs = JobRepository(session)
        assert await jobs.claim(unit_id, "worker-1", now, now + LEASE) is not None
        values = {"status": COMPLETED, "response_status": 200, "response_body": answer(n), "finished_at": now}
        assert await jobs.finish(unit_id, {"request_id": f"req_{n}", **values})


async def job(database: Database, unit_id: str) -> JobRow:
    async with database.session(readonly=True) as session, session.begin():
        row = await JobRepository(session).get(unit_id)
    assert row is not None
    return row


async def count_jobs(database: Database, *where: Any) -> int:
    async with database.session(readonly=True) as session, session.begin():
        return int(await session.scalar(select(func.count()).select_from(JobRow).where(*where)) or 0)


async def file_lines(database: Database, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id is not None
    _info, content = await FileService(database, 1_000_000).content(OWNER, file_id)
    return [orjson.loads(line) for line in content.splitlines()]


async def output_files(database: Database) -> int:
    return len(await FileService(database, 1_000_000).list_for(OWNER, OUTPUT_PURPOSE, 100))


async def move_expiry_back(database: Database, batch_id: str) -> None:
    async with database.session() as session, session.begin():
        await session.execute(
            update(BatchRow).where(BatchRow.id == batch_id).values(expires_at=utcnow() - timedelta(minutes=1))
        )


# --- expiry ----------------------------------------------------------------------------------------


async def test_an_overdue_batch_expires_keeping_the_lines_it_finished(
    database: Database, service: BatchService, kicks: KickRecorder
) -> None:
    batch_id = await prepared_batch(database, service, lines=4)
    await answer_line(database, batch_id, 1)
    await answer_line(database, batch_id, 2)
    assert await service.expire_overdue() == []  # still inside its 24 h window

    await move_expiry_back(database, batch_id)
    assert await service.expire_overdue() == [finalize_id(batch_id)]
    assert finalize_id(batch_id) in kicks.ids
    for n in (3, 4):
        stopped = await job(database, line_id(batch_id, n))
        assert stopped.status == CANCELLED
        assert stopped.error is not None and stopped.error["code"] == "batch_expired"

    await service.finalize(batch_id)
    view = await service.get(OWNER, batch_id)
    assert view.row.status == "expired"
    assert view.row.expired_at is not None
    assert view.completed == 2
    outputs = await file_lines(database, view.row.output_file_id)
    assert [(line["custom_id"], line["response"]["body"]) for line in outputs] == [
        ("req-1", answer(1)),
        ("req-2", answer(2)),
    ]
    errors = await file_lines(database, view.row.error_file_id)
    assert [(line["custom_id"], line["error"]["code"]) for line in errors] == [
        ("req-3", "batch_expired"),
        ("req-4", "batch_expired"),
    ]


async def test_an_expired_batch_is_not_expired_again(database: Database, service: BatchService) -> None:
    batch_id = await prepared_batch(database, service, lines=1)
    await move_expiry_back(database, batch_id)
    assert await service.expire_overdue() == [finalize_id(batch_id)]
    assert await service.expire_overdue() == []
    await service.finalize(batch_id)
    assert await service.expire_overdue() == []
    assert (await service.get(OWNER, batch_id)).row.status == "expired"


# --- idempotent steps ------------------------------------------------------------------------------


async def test_preparing_twice_creates_the_lines_once(database: Database, service: BatchService) -> None:
    batch_id = await new_batch(database, service, lines=3)
    first = await service.prepare(batch_id)
    again = await service.prepare(batch_id)
    assert first == again == [line_id(batch_id, n) for n in (1, 2, 3)]
    assert await count_jobs(database, JobRow.batch_id == batch_id, JobRow.kind == "line") == 3
    assert (await service.get(OWNER, batch_id)).row.total == 3

    await answer_line(database, batch_id, 2)
    # A redelivered prepare only kicks what still waits; the answered line is left alone.
    assert await service.prepare(batch_id) == [line_id(batch_id, 1), line_id(batch_id, 3)]
    assert (await job(database, line_id(batch_id, 2))).response_body == answer(2)


async def finished_batch(database: Database, service: BatchService, lines: int) -> str:
    batch_id = await prepared_batch(database, service, lines)
    for n in range(1, lines + 1):
        await answer_line(database, batch_id, n)
    return batch_id


async def test_finalizing_twice_writes_one_output_file(database: Database, service: BatchService) -> None:
    batch_id = await finished_batch(database, service, lines=2)
    await service.finalize(batch_id)
    first = await service.get(OWNER, batch_id)
    await service.finalize(batch_id)
    second = await service.get(OWNER, batch_id)

    assert first.row.status == second.row.status == "completed"
    assert first.row.output_file_id is not None
    assert second.row.output_file_id == first.row.output_file_id
    assert second.row.completed_at == first.row.completed_at
    assert await output_files(database) == 1
    assert len(await file_lines(database, second.row.output_file_id)) == 2


async def test_two_workers_finalizing_at_once_leave_one_output_file(
    database: Database, service: BatchService
) -> None:
    batch_id = await finished_batch(database, service, lines=2)
    # Two open connections, so neither finalize waits to connect and they overlap for real.
    await asyncio.gather(service.get(OWNER, batch_id), service.get(OWNER, batch_id))
    await asyncio.gather(service.finalize(batch_id), service.finalize(batch_id))
    view = await service.get(OWNER, batch_id)
    assert view.row.status == "completed"
    assert await output_files(database) == 1
    assert len(await file_lines(database, view.row.output_file_id)) == 2


async def test_the_last_line_reported_twice_adds_one_finalize_unit(
    database: Database, service: BatchService
) -> None:
    batch_id = await prepared_batch(database, service, lines=2)
    await answer_line(database, batch_id, 1)
    assert await service.line_finished(batch_id) == []  # line 2 still waits

    await answer_line(database, batch_id, 2)
    assert await service.line_finished(batch_id) == [finalize_id(batch_id)]
    assert await service.line_finished(batch_id) == [finalize_id(batch_id)]
    assert await count_jobs(database, JobRow.batch_id == batch_id, JobRow.kind == "finalize") == 1


async def test_two_last_lines_racing_add_one_finalize_unit(database: Database, service: BatchService) -> None:
    batch_id = await finished_batch(database, service, lines=2)
    results = await asyncio.gather(service.line_finished(batch_id), service.line_finished(batch_id))
    assert [finalize_id(batch_id)] in results
    assert await count_jobs(database, JobRow.batch_id == batch_id, JobRow.kind == "finalize") == 1
    assert (await job(database, finalize_id(batch_id))).status == QUEUED


# --- claims ----------------------------------------------------------------------------------------


async def queued_request(database: Database) -> str:
    row = request_row(
        unit_id=new_job_id(),
        kind=REQUEST,
        owner=OWNER,
        key_id=None,
        endpoint=ENDPOINT,
        body={"model": "tiny", "messages": [{"role": "user", "content": "hi"}]},
        priority=50,
        now=utcnow(),
    )
    async with database.session() as session, session.begin():
        JobRepository(session).add_all([row])
    return row.id


async def claim(database: Database, unit_id: str, worker: str, lease: timedelta = LEASE) -> JobRow | None:
    now = utcnow()
    async with database.session() as session, session.begin():
        return await JobRepository(session).claim(unit_id, worker, now, now + lease)


async def finish(database: Database, unit_id: str, body: dict[str, Any]) -> bool:
    values = {"status": COMPLETED, "response_status": 200, "response_body": body, "finished_at": utcnow()}
    async with database.session() as session, session.begin():
        return await JobRepository(session).finish(unit_id, values)


async def test_a_queued_unit_is_claimed_by_one_worker(database: Database) -> None:
    unit_id = await queued_request(database)
    first = await claim(database, unit_id, "worker-1")
    second = await claim(database, unit_id, "worker-2")
    assert first is not None and first.lease_owner == "worker-1" and first.attempts == 1
    assert second is None
    assert (await job(database, unit_id)).lease_owner == "worker-1"


async def test_two_workers_claiming_at_once_one_wins(database: Database) -> None:
    unit_id = await queued_request(database)
    claims = await asyncio.gather(*(claim(database, unit_id, f"worker-{n}") for n in range(4)))
    winners = [row.lease_owner for row in claims if row is not None]
    assert len(winners) == 1
    row = await job(database, unit_id)
    assert (row.status, row.lease_owner, row.attempts) == (RUNNING, winners[0], 1)


async def test_a_unit_whose_lease_ran_out_is_taken_over(database: Database) -> None:
    unit_id = await queued_request(database)
    assert await claim(database, unit_id, "worker-1", lease=-timedelta(seconds=1)) is not None

    taken = await claim(database, unit_id, "worker-2")
    assert taken is not None
    assert (taken.status, taken.lease_owner, taken.attempts) == (RUNNING, "worker-2", 2)
    async with database.session() as session, session.begin():
        jobs = JobRepository(session)
        # The first worker can neither keep it nor hand it back.
        assert not await jobs.renew(unit_id, "worker-1", utcnow() + LEASE)
        assert not await jobs.release(unit_id, "worker-1", None)
    assert (await job(database, unit_id)).lease_owner == "worker-2"


async def test_a_second_answer_never_overwrites_the_first(database: Database) -> None:
    unit_id = await queued_request(database)
    assert await claim(database, unit_id, "worker-1", lease=-timedelta(seconds=1)) is not None
    assert await claim(database, unit_id, "worker-2") is not None

    assert await finish(database, unit_id, {"answer": "from worker-2"})
    assert not await finish(database, unit_id, {"answer": "from worker-1"})
    row = await job(database, unit_id)
    assert (row.status, row.response_body) == (COMPLETED, {"answer": "from worker-2"})


async def test_a_cancelled_unit_cannot_be_claimed_or_answered(database: Database) -> None:
    unit_id = await queued_request(database)
    async with database.session() as session, session.begin():
        assert await JobRepository(session).cancel(unit_id, utcnow())
    assert await claim(database, unit_id, "worker-1") is None
    assert not await finish(database, unit_id, {"answer": "late"})
    row = await job(database, unit_id)
    assert (row.status, row.response_body) == (CANCELLED, None)
