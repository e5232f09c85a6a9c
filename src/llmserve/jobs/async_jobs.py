"""Async jobs: submit a request, get an id at once, poll it (or get a signed callback) for the answer.

The answer is exactly the body the synchronous endpoint would have returned (the runner calls that
endpoint in process). Jobs belong to the tenant that submitted them; other tenants get 404.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from llmserve.config import JobSettings
from llmserve.errors import Conflict, NotFound
from llmserve.jobs.batches import Kick
from llmserve.jobs.callback_guard import check_callback_url, require_secret
from llmserve.jobs.units import REQUEST, new_job_id, request_row
from llmserve.storage.db import Database
from llmserve.storage.jobs_repository import CANCELLED, COMPLETED, JobRepository
from llmserve.storage.models import JobRow, utcnow


def _timestamp(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


def job_payload(row: JobRow) -> dict[str, Any]:
    """What GET /v1/jobs/{id} answers and what a callback carries."""
    payload: dict[str, Any] = {
        "id": row.id,
        "object": "job",
        "endpoint": row.endpoint,
        "status": row.status,
        "created_at": _timestamp(row.created_at),
        "started_at": _timestamp(row.started_at),
        "completed_at": _timestamp(row.finished_at),
        "expires_at": _timestamp(row.expires_at),
        "attempts": row.attempts,
        "request_id": row.request_id,
        "status_code": row.response_status,
        "result": None,
        "error": None,
    }
    if row.status == COMPLETED:
        payload["result"] = row.response_body
    elif isinstance(row.response_body, dict) and isinstance(row.response_body.get("error"), dict):
        payload["error"] = row.response_body["error"]
    elif row.error is not None:
        payload["error"] = row.error
    if row.callback_url is not None:
        payload["callback"] = {"url": row.callback_url, "state": row.callback_state or "pending"}
    return payload


class AsyncJobService:
    def __init__(self, database: Database, settings: JobSettings, kick: Kick) -> None:
        self._db = database
        self._settings = settings
        self._kick = kick

    async def submit(
        self,
        *,
        owner: str,
        key_id: str | None,
        endpoint: str,
        body: dict[str, Any],
        callback_url: str | None,
        priority: int | None,
        job_id: str | None = None,
    ) -> dict[str, Any]:
        """Queues the request; ``job_id`` lets the caller store a reference to the job first (a
        background response is saved before its job can run)."""
        if callback_url is not None:
            require_secret(self._settings)
            await check_callback_url(callback_url, self._settings)
        now = utcnow()
        row = request_row(
            unit_id=job_id or new_job_id(),
            kind=REQUEST,
            owner=owner,
            key_id=key_id,
            endpoint=endpoint,
            body=body,
            priority=max(priority or 0, self._settings.batch_priority),
            now=now,
            callback_url=callback_url,
            retention=timedelta(seconds=self._settings.result_ttl_seconds),
        )
        async with self._db.session() as session, session.begin():
            JobRepository(session).add_all([row])
        await self._kick([row.id])
        return job_payload(row)

    async def get(self, owner: str, job_id: str) -> dict[str, Any]:
        async with self._db.session(readonly=True) as session, session.begin():
            return job_payload(await _owned(JobRepository(session), owner, job_id))

    async def cancel(self, owner: str, job_id: str) -> dict[str, Any]:
        """Queued: never runs. Running: its worker sees the cancellation at its next lease renewal
        and stops; the answer, if one arrives anyway, is not stored. Finished: 409."""
        async with self._db.session() as session, session.begin():
            jobs = JobRepository(session)
            row = await _owned(jobs, owner, job_id)
            if row.status == CANCELLED:
                return job_payload(row)
            now = utcnow()
            if not await jobs.cancel(job_id, now):
                raise Conflict(f"Job {job_id} is already {row.status}; it cannot be cancelled")
            await session.refresh(row)
            row.expires_at = now + timedelta(seconds=self._settings.result_ttl_seconds)
            return job_payload(row)


async def _owned(jobs: JobRepository, owner: str, job_id: str) -> JobRow:
    row = await jobs.get(job_id)
    if row is None or row.owner != owner or row.kind != REQUEST:
        raise NotFound(f"No such job: {job_id}", param="job_id", code="job_not_found")
    return row
