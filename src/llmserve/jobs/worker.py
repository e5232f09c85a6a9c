"""JobWorker: consumes units from the broker and keeps the queue healthy.

Every process with jobs wired (the server, each ``llmserve worker``) runs the sweeper: units whose
worker died (lease ran out) go back to the queue and are kicked again; units queued long ago with
no taker are kicked again (a message lost between the database commit and the broker); batches past
their completion window expire; finished async jobs past their retention are deleted. Sweepers in
several processes race harmlessly: every change is a conditional update and redelivery is idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from sqlalchemy import update

from llmserve.config import JobSettings
from llmserve.jobs.batches import BatchService
from llmserve.jobs.brokers import Broker
from llmserve.jobs.runner import UnitRunner
from llmserve.storage.db import Database
from llmserve.storage.jobs_repository import QUEUED, RUNNING, JobRepository
from llmserve.storage.models import JobRow, utcnow

logger = logging.getLogger(__name__)

SWEEP_LIMIT = 500
MAX_SWEEP_INTERVAL_S = 5.0
MIN_STALE_QUEUED_S = 60.0


class JobWorker:
    def __init__(
        self,
        database: Database,
        settings: JobSettings,
        broker: Broker,
        runner: UnitRunner,
        batches: BatchService,
        *,
        consume: bool,
    ) -> None:
        self._db = database
        self._settings = settings
        self.broker = broker
        self.runner = runner
        self._batches = batches
        self.consuming = consume
        self._tasks: list[asyncio.Task[None]] = []
        self._sweep_interval = min(settings.lease_seconds / 2, MAX_SWEEP_INTERVAL_S)
        self._stale_after = max(settings.lease_seconds * 10, MIN_STALE_QUEUED_S)
        self._last_stale_kick = 0.0

    async def start(self) -> None:
        await self.broker.start(self.consuming)
        if self.consuming:
            consumer = self.broker.consume(self.runner.run, self._settings.worker_concurrency)
            self._tasks.append(asyncio.create_task(consumer, name="jobs-consumer"))
        self._tasks.append(asyncio.create_task(self._sweep_forever(), name="jobs-sweeper"))
        logger.info(
            "jobs: %s broker, %s",
            self._settings.broker,
            f"running up to {self._settings.worker_concurrency} units at once"
            if self.consuming
            else "submit only",
        )

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.runner.close()
        await self.broker.close()

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_interval)
            try:
                await self.sweep()
            except Exception:  # a database blip must not end the sweeper
                logger.exception("jobs sweep failed; trying again in %.1f s", self._sweep_interval)

    async def sweep(self) -> None:
        await self.broker.kick(await self._requeue_expired_leases())
        if self.broker.needs_kicks_for_recovery:
            await self.broker.kick(await self._stale_queued())
        await self._batches.expire_overdue()
        # A batch whose last line's follow-up was lost (its worker died right after storing it).
        await self.broker.kick(await self._batches.finalize_stalled())
        async with self._db.session() as session, session.begin():
            removed = await JobRepository(session).delete_expired(utcnow())
        if removed:
            logger.info("jobs: deleted %d async jobs past their retention", removed)

    async def _requeue_expired_leases(self) -> list[str]:
        """Units whose worker stopped renewing (killed, partitioned) go back to the queue."""
        now = utcnow()
        requeued = []
        async with self._db.session() as session, session.begin():
            for job_id in await JobRepository(session).expired_lease_ids(now, SWEEP_LIMIT):
                result = await session.execute(
                    update(JobRow)
                    .where(JobRow.id == job_id, JobRow.status == RUNNING, JobRow.lease_until < now)
                    .values(status=QUEUED, lease_owner=None, lease_until=None)
                )
                if getattr(result, "rowcount", 0) == 1:
                    requeued.append(job_id)
        if requeued:
            logger.warning("jobs: %d units lost their worker; queued again: %s", len(requeued), requeued[:5])
        return requeued

    async def _stale_queued(self) -> list[str]:
        loop_now = asyncio.get_running_loop().time()
        if loop_now - self._last_stale_kick < self._stale_after:
            return []
        self._last_stale_kick = loop_now
        cutoff = utcnow() - timedelta(seconds=self._stale_after)
        async with self._db.session(readonly=True) as session, session.begin():
            return await JobRepository(session).queued_ids_since(cutoff, SWEEP_LIMIT)


async def drain(worker: JobWorker | None) -> None:
    if worker is not None:
        with contextlib.suppress(Exception):
            await worker.close()
