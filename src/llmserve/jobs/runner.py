"""UnitRunner: claims one queued unit, runs it under a renewed lease, and writes its outcome once.

Delivery is at least once (a broker redelivers what a dead worker held; a lease that stops being
renewed makes the unit claimable again), so everything here is idempotent: the claim is a
conditional UPDATE, the outcome is written only while the unit is unfinished, and batch steps have
fixed ids. A worker killed with SIGKILL mid-line therefore loses nothing and duplicates nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from llmserve.config import JobSettings
from llmserve.errors import LLMServeError, error_body
from llmserve.jobs.async_jobs import job_payload
from llmserve.jobs.batches import BatchService, Kick
from llmserve.jobs.invoke import AppInvoker, Invocation
from llmserve.jobs.units import FINALIZE, LINE, PREPARE, REQUEST
from llmserve.jobs.webhooks import WebhookSender
from llmserve.principal import ANONYMOUS_PRINCIPAL, Principal
from llmserve.retry_timing import backoff_delay
from llmserve.services.keys import MASTER_PRINCIPAL, KeyService
from llmserve.storage.db import Database
from llmserve.storage.jobs_repository import COMPLETED, FAILED, JobRepository
from llmserve.storage.models import JobRow, utcnow

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({500, 502, 503, 504})
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
RATE_LIMIT_WAIT_CAP_S = 60.0
WEBHOOK_DRAIN_S = 10.0


@dataclass(frozen=True)
class Unit:
    id: str
    kind: str
    batch_id: str | None
    owner: str
    key_id: str | None
    endpoint: str
    body: dict[str, Any] | None
    attempts: int
    callback_url: str | None

    @classmethod
    def from_row(cls, row: JobRow) -> Unit:
        return cls(
            row.id,
            row.kind,
            row.batch_id,
            row.owner,
            row.key_id,
            row.endpoint,
            row.body,
            row.attempts,
            row.callback_url,
        )


class LeaseLost(Exception):
    """The unit stopped being ours (cancelled, or another worker took it after our lease ran out)."""


class UnitRunner:
    def __init__(
        self,
        database: Database,
        settings: JobSettings,
        invoker: AppInvoker,
        batches: BatchService,
        kick: Kick,
        worker_id: str,
        *,
        keys: KeyService | None = None,
        webhooks: WebhookSender | None = None,
    ) -> None:
        self._db = database
        self._settings = settings
        self._invoker = invoker
        self._batches = batches
        self._kick = kick
        self.worker_id = worker_id
        self._keys = keys
        self._webhooks = webhooks
        self._lease = timedelta(seconds=settings.lease_seconds)
        self._retention = timedelta(seconds=settings.result_ttl_seconds)
        self._deliveries: set[asyncio.Task[None]] = set()
        self._pending_kicks: dict[str, list[str]] = {}
        # Lines that left no unfinished line in their batch when stored: their follow-up finalises.
        self._last_lines: set[str] = set()

    async def run(self, job_id: str) -> None:
        unit = await self._claim(job_id)
        if unit is None:
            return  # finished, cancelled or held by a live worker: nothing to do
        work = asyncio.create_task(self._execute(unit))
        try:
            await self._hold_lease(unit, work)
            written = await work
            # Not under the lease: once the outcome is stored the unit is finished, and a renewal
            # would (rightly) find it no longer running.
            await self._follow_up(unit, written)
        except LeaseLost:
            logger.info("job unit %s is no longer ours (cancelled or taken over); dropped", unit.id)
        except Exception:
            # A bug or a database outage: back to the queue; the attempt counter bounds the retries.
            logger.exception("job unit %s failed to run; it goes back to the queue", unit.id)
            with contextlib.suppress(Exception):
                await self._release(unit.id)
        except asyncio.CancelledError:
            work.cancel()
            with contextlib.suppress(BaseException):
                await work
            # Shutting down: hand the unit back now rather than after the lease runs out.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._release(unit.id))
            raise

    async def close(self) -> None:
        if self._deliveries:
            await asyncio.wait(self._deliveries, timeout=WEBHOOK_DRAIN_S)
        for task in self._deliveries:
            task.cancel()
        if self._webhooks is not None:
            await self._webhooks.close()

    async def _claim(self, job_id: str) -> Unit | None:
        now = utcnow()
        gave_up: str | None = None
        async with self._db.session() as session, session.begin():
            jobs = JobRepository(session)
            row = await jobs.claim(job_id, self.worker_id, now, now + self._lease)
            if row is None:
                return None
            if row.attempts > self._settings.max_attempts * 2:  # it keeps killing workers: stop
                error = {"code": "too_many_attempts", "message": f"Gave up after {row.attempts - 1} attempts"}
                values = {"status": FAILED, "error": error, "finished_at": now}
                if row.kind == REQUEST:
                    values["expires_at"] = now + self._retention
                await jobs.finish(job_id, values)
                gave_up = row.batch_id if row.kind == LINE else None
            else:
                return Unit.from_row(row)
        if gave_up is not None:
            await self._kick(await self._batches.line_finished(gave_up))
        return None

    async def _hold_lease(self, unit: Unit, work: asyncio.Task[bool]) -> None:
        """Renews the lease every third of its length while ``work`` runs; cancels it when lost."""
        interval = self._settings.lease_seconds / 3
        while not work.done():
            await asyncio.wait({work}, timeout=interval)
            if work.done():
                return
            now = utcnow()
            async with self._db.session() as session, session.begin():
                held = await JobRepository(session).renew(unit.id, self.worker_id, now + self._lease)
            if not held:
                if work.done():  # it finished (and so let the lease go) while we renewed
                    return
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work
                raise LeaseLost(unit.id)

    async def _release(self, job_id: str) -> None:
        async with self._db.session() as session, session.begin():
            await JobRepository(session).release(job_id, self.worker_id, None)

    async def _execute(self, unit: Unit) -> bool:
        """Runs the unit and writes its outcome; True when this call wrote it (it may have been
        finished or cancelled meanwhile). Follow-ups happen in ``_follow_up``, outside the lease."""
        if unit.kind == PREPARE and unit.batch_id is not None:
            self._pending_kicks[unit.id] = await self._batches.prepare(unit.batch_id)
            return await self._finish(unit.id, {"status": COMPLETED})
        if unit.kind == FINALIZE and unit.batch_id is not None:
            await self._batches.finalize(unit.batch_id)
            return await self._finish(unit.id, {"status": COMPLETED})
        if unit.kind in (LINE, REQUEST):
            outcome = await self._call(unit)
            if unit.kind == REQUEST:  # kept result_ttl_seconds from now, not from when it was queued
                outcome["expires_at"] = utcnow() + self._retention
            return await self._finish(unit.id, outcome, unit.batch_id)
        error = {"code": "unknown_unit", "message": f"Unknown unit kind {unit.kind!r}"}
        return await self._finish(unit.id, {"status": FAILED, "error": error})

    async def _follow_up(self, unit: Unit, written: bool) -> None:
        """After the outcome is stored: kick what it unblocked (lines of a prepared batch, the
        finalize step after a batch's last line) and send an async job's callback."""
        kick = self._pending_kicks.pop(unit.id, [])
        if unit.kind == LINE and unit.batch_id is not None and unit.id in self._last_lines:
            self._last_lines.discard(unit.id)
            kick += await self._batches.line_finished(unit.batch_id)
        await self._kick(kick)
        if unit.kind == REQUEST and written and unit.callback_url:
            self._notify(unit.id)

    async def _finish(self, job_id: str, values: dict[str, Any], batch_id: str | None = None) -> bool:
        """Stores the outcome; for a batch line, also notes (same transaction) whether it was the last."""
        values = {"finished_at": utcnow(), **values}
        async with self._db.session() as session, session.begin():
            jobs = JobRepository(session)
            written = await jobs.finish(job_id, values)
            if batch_id is not None and written and not await jobs.unfinished_lines(batch_id):
                self._last_lines.add(job_id)
            return written

    async def _call(self, unit: Unit) -> dict[str, Any]:
        try:
            principal = await self._principal(unit)
        except LLMServeError as exc:
            return _failure(exc.status_code, exc.error_type, exc.code, exc.message, unit.id)
        retries = 0
        while True:
            invocation = await self._invoker.post(
                unit.endpoint, unit.body or {}, principal, self._settings.batch_priority, unit.id
            )
            if invocation.status == 429:
                # Limits apply to batch work too: wait as told and try again; never fail the line for it.
                await asyncio.sleep(_wait(invocation.retry_after, retries, RATE_LIMIT_WAIT_CAP_S))
                continue
            attempts = unit.attempts + retries
            if invocation.status in RETRYABLE_STATUS and attempts < self._settings.max_attempts:
                retries += 1
                await asyncio.sleep(_wait(invocation.retry_after, retries, BACKOFF_CAP_S))
                continue
            return _outcome(invocation)

    async def _principal(self, unit: Unit) -> Principal:
        if unit.key_id is not None and self._keys is not None:
            return await self._keys.principal_by_id(unit.key_id)
        return MASTER_PRINCIPAL if unit.owner == "master" else ANONYMOUS_PRINCIPAL

    def _notify(self, job_id: str) -> None:
        if self._webhooks is None:
            return
        task = asyncio.create_task(self._deliver(job_id))
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, job_id: str) -> None:
        assert self._webhooks is not None
        async with self._db.session(readonly=True) as session, session.begin():
            row = await JobRepository(session).get(job_id)
            if row is None or row.callback_url is None:
                return
            payload, url = job_payload(row), row.callback_url
        try:
            result = await self._webhooks.deliver(url, f"job.{payload['status']}", payload)
            state = "delivered" if result.delivered else "failed"
            if not result.delivered:
                logger.warning(
                    "webhook for job %s not delivered after %d attempts: %s",
                    job_id,
                    result.attempts,
                    result.error,
                )
        except LLMServeError as exc:  # the target became a refused address since submission
            state = "refused"
            logger.warning("webhook for job %s refused: %s", job_id, exc.message)
        async with self._db.session() as session, session.begin():
            row = await JobRepository(session).get(job_id)
            if row is not None:
                row.callback_state = state


def _outcome(invocation: Invocation) -> dict[str, Any]:
    ok = 200 <= invocation.status < 300
    return {
        "status": COMPLETED if ok else FAILED,
        "response_status": invocation.status,
        "response_body": invocation.body,
        "request_id": invocation.request_id,
        "error": None,
    }


def _failure(status: int, error_type: str, code: str | None, message: str, request_id: str) -> dict[str, Any]:
    body = error_body(message, error_type, code=code)
    return {"status": FAILED, "response_status": status, "response_body": body, "request_id": request_id}


def _wait(retry_after: float | None, retries: int, cap: float) -> float:
    if retry_after is not None:
        return min(max(retry_after, 0.05), cap)
    return backoff_delay(retries, BACKOFF_BASE_S, cap)
