"""UnitRunner and JobWorker.sweep on both backends, with a hand-written invoker in place of the app.

The invoker stands in for the in-process call of the app (the API and e2e tiers run the real one):
it answers from a script and writes down what it was asked, so these tests can check what a batch
line or an async job ends up as when limits answer 429, the backend answers 500, the user cancels
mid-call, or a worker dies holding a unit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
import pytest
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from llmserve.api.serving.convert import request_context
from llmserve.config import JobSettings
from llmserve.jobs.async_jobs import AsyncJobService
from llmserve.jobs.batches import BatchService
from llmserve.jobs.brokers import Handler
from llmserve.jobs.files import FileService
from llmserve.jobs.invoke import AppInvoker, Invocation
from llmserve.jobs.runner import UnitRunner
from llmserve.jobs.units import REQUEST, finalize_id, line_id, new_job_id, prepare_id, request_row
from llmserve.jobs.worker import JobWorker
from llmserve.principal import PRIORITY_FLOOR_SCOPE_KEY, Principal
from llmserve.storage.db import Database
from llmserve.storage.jobs_repository import CANCELLED, COMPLETED, FAILED, QUEUED, RUNNING, JobRepository
from llmserve.storage.models import JobRow, utcnow

OWNER = "tenant-a"
ENDPOINT = "/v1/chat/completions"
OK = {"object": "chat.completion", "choices": [{"message": {"content": "hello"}}]}
RATE_LIMITED = {
    "error": {"message": "Rate limit reached", "type": "rate_limit_error", "code": "rate_limited"}
}
BACKEND_DOWN = {"error": {"message": "The backend failed", "type": "server_error", "code": "backend_error"}}


class KickRecorder:
    def __init__(self) -> None:
        self.ids: list[str] = []

    async def __call__(self, ids: Sequence[str]) -> None:
        self.ids.extend(ids)


@dataclass(frozen=True)
class Call:
    path: str
    body: dict[str, Any]
    principal: Principal
    priority_floor: int
    request_id: str


async def _no_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("the scripted invoker never calls the app")


class ScriptedInvoker(AppInvoker):
    """Answers each call with the next scripted invocation (the last one repeats)."""

    def __init__(self, *answers: Invocation, delay: float = 0.0) -> None:
        super().__init__(_no_app)
        self.answers = list(answers)
        self.delay = delay
        self.calls: list[Call] = []
        self.called = asyncio.Event()
        self.cancelled = False

    async def post(
        self, path: str, body: dict[str, Any], principal: Principal, priority_floor: int, request_id: str
    ) -> Invocation:
        self.calls.append(Call(path, body, principal, priority_floor, request_id))
        self.called.set()
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def reply(status: int, body: Any, retry_after: float | None = None) -> Invocation:
    return Invocation(status=status, body=body, request_id=f"req-{status}", retry_after=retry_after)


@dataclass
class Jobs:
    database: Database
    settings: JobSettings
    kicks: KickRecorder
    batches: BatchService

    def runner(self, invoker: AppInvoker, worker_id: str = "worker-1") -> UnitRunner:
        return UnitRunner(self.database, self.settings, invoker, self.batches, self.kicks, worker_id)


def jobs_for(database: Database, **settings: Any) -> Jobs:
    job_settings = JobSettings(**settings)
    kicks = KickRecorder()
    return Jobs(database, job_settings, kicks, BatchService(database, job_settings, kicks))


async def prepared_batch(jobs: Jobs, lines: int) -> str:
    content = b"".join(
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
    upload = await FileService(jobs.database, 1_000_000).create(OWNER, "batch", "in.jsonl", content)
    view = await jobs.batches.create(
        owner=OWNER,
        key_id=None,
        input_file_id=upload.id,
        endpoint=ENDPOINT,
        completion_window="24h",
        metadata=None,
    )
    assert len(await jobs.batches.prepare(view.row.id)) == lines
    return view.row.id


async def job(database: Database, unit_id: str) -> JobRow:
    async with database.session(readonly=True) as session, session.begin():
        row = await JobRepository(session).get(unit_id)
    assert row is not None
    return row


# --- UnitRunner --------------------------------------------------------------------------------------


async def test_rate_limited_lines_wait_and_then_complete(database: Database) -> None:
    # One attempt allowed: a 429 must not use it up, or a busy tenant's batch would fail lines.
    jobs = jobs_for(database, max_attempts=1, batch_priority=60)
    batch_id = await prepared_batch(jobs, lines=1)
    invoker = ScriptedInvoker(
        reply(429, RATE_LIMITED, retry_after=0.01), reply(429, RATE_LIMITED, retry_after=0.01), reply(200, OK)
    )

    await jobs.runner(invoker).run(line_id(batch_id, 1))

    row = await job(database, line_id(batch_id, 1))
    assert (row.status, row.response_status, row.response_body) == (COMPLETED, 200, OK)
    assert len(invoker.calls) == 3
    call = invoker.calls[0]
    assert (call.path, call.priority_floor, call.request_id) == (ENDPOINT, 60, line_id(batch_id, 1))
    assert call.body["messages"] == [{"role": "user", "content": "question 1"}]


async def test_a_failing_backend_is_retried_up_to_max_attempts_then_the_line_fails(
    database: Database,
) -> None:
    jobs = jobs_for(database, max_attempts=3)
    batch_id = await prepared_batch(jobs, lines=1)
    invoker = ScriptedInvoker(reply(500, BACKEND_DOWN, retry_after=0.01))

    await jobs.runner(invoker).run(line_id(batch_id, 1))

    assert len(invoker.calls) == 3
    row = await job(database, line_id(batch_id, 1))
    assert (row.status, row.response_status, row.response_body) == (FAILED, 500, BACKEND_DOWN)
    view = await jobs.batches.get(OWNER, batch_id)
    assert (view.completed, view.failed) == (0, 1)


async def test_a_job_cancelled_while_it_runs_is_stopped_and_keeps_no_answer(database: Database) -> None:
    jobs = jobs_for(database, lease_seconds=0.3)
    service = AsyncJobService(database, jobs.settings, jobs.kicks)
    submitted = await service.submit(
        owner=OWNER, key_id=None, endpoint=ENDPOINT, body={"model": "tiny"}, callback_url=None, priority=None
    )
    invoker = ScriptedInvoker(reply(200, OK), delay=1.0)
    started = time.monotonic()
    running = asyncio.create_task(jobs.runner(invoker).run(submitted["id"]))
    await asyncio.wait_for(invoker.called.wait(), 5)

    assert (await service.cancel(OWNER, submitted["id"]))["status"] == CANCELLED
    await asyncio.wait_for(running, 5)

    assert invoker.cancelled  # the call was stopped, not left to spend tokens
    assert time.monotonic() - started < 1.0
    row = await job(database, submitted["id"])
    assert (row.status, row.response_status, row.response_body) == (CANCELLED, None, None)
    assert (await service.get(OWNER, submitted["id"]))["result"] is None


async def test_the_last_line_of_a_batch_kicks_its_finalize_unit(database: Database) -> None:
    jobs = jobs_for(database)
    batch_id = await prepared_batch(jobs, lines=2)
    runner = jobs.runner(ScriptedInvoker(reply(200, OK)))

    await runner.run(line_id(batch_id, 1))
    assert finalize_id(batch_id) not in jobs.kicks.ids
    await runner.run(line_id(batch_id, 2))
    assert finalize_id(batch_id) in jobs.kicks.ids

    await runner.run(finalize_id(batch_id))
    view = await jobs.batches.get(OWNER, batch_id)
    assert (view.row.status, view.completed, view.failed) == ("completed", 2, 0)
    assert view.row.output_file_id is not None
    _info, content = await FileService(database, 1_000_000).content(OWNER, view.row.output_file_id)
    outputs = [orjson.loads(line) for line in content.splitlines()]
    assert [(line["custom_id"], line["response"]["body"]) for line in outputs] == [
        ("req-1", OK),
        ("req-2", OK),
    ]


async def test_a_prepare_unit_run_by_the_runner_kicks_every_line(database: Database) -> None:
    jobs = jobs_for(database)
    upload = await FileService(database, 1_000_000).create(
        OWNER,
        "batch",
        "in.jsonl",
        b"".join(
            orjson.dumps({"custom_id": f"c{n}", "url": ENDPOINT, "body": {"model": "tiny"}}) + b"\n"
            for n in (1, 2, 3)
        ),
    )
    view = await jobs.batches.create(
        owner=OWNER,
        key_id=None,
        input_file_id=upload.id,
        endpoint=ENDPOINT,
        completion_window="24h",
        metadata=None,
    )
    assert jobs.kicks.ids == [prepare_id(view.row.id)]

    await jobs.runner(ScriptedInvoker(reply(200, OK))).run(prepare_id(view.row.id))

    assert jobs.kicks.ids[1:] == [line_id(view.row.id, n) for n in (1, 2, 3)]
    assert (await jobs.batches.get(OWNER, view.row.id)).row.status == "in_progress"
    assert (await job(database, prepare_id(view.row.id))).status == COMPLETED


# --- JobWorker.sweep ---------------------------------------------------------------------------------


class RecordingBroker:
    """A broker that delivers nothing and writes down what it was asked to kick."""

    needs_kicks_for_recovery = False

    def __init__(self) -> None:
        self.kicked: list[str] = []

    async def start(self, consume: bool) -> None:
        return None

    async def kick(self, job_ids: Sequence[str]) -> None:
        self.kicked.extend(job_ids)

    async def consume(self, handler: Handler, concurrency: int) -> None:
        return None

    async def close(self) -> None:
        return None


@pytest.fixture
def broker() -> RecordingBroker:
    return RecordingBroker()


async def running_request(database: Database, worker: str, lease: timedelta) -> str:
    row = request_row(
        unit_id=new_job_id(),
        kind=REQUEST,
        owner=OWNER,
        key_id=None,
        endpoint=ENDPOINT,
        body={"model": "tiny"},
        priority=50,
        now=utcnow(),
    )
    async with database.session() as session, session.begin():
        jobs = JobRepository(session)
        jobs.add_all([row])
        await session.flush()
        now = utcnow()
        assert await jobs.claim(row.id, worker, now, now + lease) is not None
    return row.id


async def test_sweep_requeues_and_kicks_a_unit_whose_worker_died(
    database: Database, broker: RecordingBroker
) -> None:
    jobs = jobs_for(database)
    worker = JobWorker(
        database,
        jobs.settings,
        broker,
        jobs.runner(ScriptedInvoker(reply(200, OK))),
        jobs.batches,
        consume=False,
    )
    orphaned = await running_request(database, "dead-worker", lease=-timedelta(seconds=1))
    alive = await running_request(database, "live-worker", lease=timedelta(seconds=30))

    await worker.sweep()

    assert broker.kicked == [orphaned]
    row = await job(database, orphaned)
    assert (row.status, row.lease_owner, row.lease_until) == (QUEUED, None, None)
    assert (await job(database, alive)).status == RUNNING

    # Kicked again, the unit runs to its answer on another worker.
    await jobs.runner(ScriptedInvoker(reply(200, OK)), worker_id="worker-2").run(orphaned)
    row = await job(database, orphaned)
    assert (row.status, row.response_body, row.attempts) == (COMPLETED, OK, 2)


# --- priority floor ----------------------------------------------------------------------------------


def http_request(priority_floor: int | None) -> Request:
    scope: dict[str, Any] = {"type": "http", "method": "POST", "path": ENDPOINT, "headers": [], "state": {}}
    if priority_floor is not None:
        scope[PRIORITY_FLOOR_SCOPE_KEY] = priority_floor
    return Request(scope)


@pytest.mark.parametrize(("asked", "runs_at"), [(1, 50), (None, 50), (70, 70)])
def test_queued_work_never_runs_ahead_of_the_priority_floor(asked: int | None, runs_at: int) -> None:
    assert request_context(http_request(priority_floor=50), priority=asked).priority == runs_at


def test_interactive_requests_keep_the_priority_they_ask_for() -> None:
    assert request_context(http_request(priority_floor=None), priority=1).priority == 1
    assert request_context(http_request(priority_floor=None)).priority is None
