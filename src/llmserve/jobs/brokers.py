"""Where queued units wait for a worker: the database itself (embedded), or Redis / RabbitMQ via taskiq.

A broker only carries unit ids; the database row is the truth (see runner.py). taskiq was chosen
over arq and Celery because it is asyncio-native like the rest of the server (Celery runs tasks in
sync worker pools), speaks both Redis Streams and RabbitMQ through one API (arq is Redis-only and
polls a sorted set), acknowledges a message only after its task ran (at-least-once), and runs its
receiver inside our own process (``run_receiver_task``), so ``llmserve worker`` reuses the server's
settings and services instead of importing a module-level app.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable, Coroutine, Sequence
from typing import Any, Protocol

from llmserve.config import JobSettings
from llmserve.storage.db import Database
from llmserve.storage.jobs_repository import JobRepository
from llmserve.storage.models import utcnow

Handler = Callable[[str], Coroutine[Any, Any, None]]
TASK_NAME = "llmserve.jobs.run_unit"
KICK_CHUNK = 200  # messages published concurrently
STREAM_MAXLEN = 1_000_000


class Broker(Protocol):
    needs_kicks_for_recovery: bool

    async def start(self, consume: bool) -> None: ...

    async def kick(self, job_ids: Sequence[str]) -> None: ...

    async def consume(self, handler: Handler, concurrency: int) -> None:
        """Runs ``handler(job_id)`` for delivered units, at most ``concurrency`` at once, until cancelled."""

    async def close(self) -> None: ...


class DatabaseBroker:
    """Workers poll the jobs table (best priority, oldest first). A kick in this process wakes the
    local poller at once; other processes sharing the database find the unit at their next poll."""

    needs_kicks_for_recovery = False

    def __init__(self, database: Database, poll_interval: float) -> None:
        self._db = database
        self._poll_interval = poll_interval
        self._wake = asyncio.Event()

    async def start(self, consume: bool) -> None:
        return None

    async def kick(self, job_ids: Sequence[str]) -> None:
        if job_ids:
            self._wake.set()

    async def consume(self, handler: Handler, concurrency: int) -> None:
        running: dict[str, asyncio.Task[None]] = {}
        try:
            while True:
                self._wake.clear()
                free = concurrency - len(running)
                if free > 0:
                    async with self._db.session(readonly=True) as session, session.begin():
                        ids = await JobRepository(session).claimable_ids(utcnow(), free + len(running))
                    for job_id in [i for i in ids if i not in running][:free]:
                        running[job_id] = asyncio.create_task(handler(job_id))
                        running[job_id].add_done_callback(_forget(running, job_id))
                    if len(ids) > len(running) and len(running) < concurrency:
                        continue  # more waiting and room for it
                waiters: set[asyncio.Future[Any]] = {asyncio.ensure_future(self._wake.wait())}
                if len(running) >= concurrency:
                    waiters |= set(running.values())
                _done, pending = await asyncio.wait(
                    waiters, timeout=self._poll_interval, return_when=asyncio.FIRST_COMPLETED
                )
                for waiter in pending - set(running.values()):
                    waiter.cancel()
        finally:
            for task in running.values():
                task.cancel()
            await asyncio.gather(*running.values(), return_exceptions=True)

    async def close(self) -> None:
        return None


class TaskiqBroker:
    """Redis Streams (consumer group, ack after the run, idle messages claimed by live workers) or
    RabbitMQ (ack after the run; the broker requeues what a dead connection held)."""

    needs_kicks_for_recovery = True

    def __init__(self, settings: JobSettings, url: str) -> None:
        self._handler: Handler | None = None
        self._broker = _make_broker(settings, url)

        async def run_unit(job_id: str) -> None:  # a plain function: taskiq renames what it registers
            if self._handler is not None:
                await self._handler(job_id)

        self._task = self._broker.register_task(run_unit, task_name=TASK_NAME)

    async def start(self, consume: bool) -> None:
        # A consumer opens its read connection at startup (taskiq-aio-pika); a producer does not.
        self._broker.is_worker_process = consume
        await self._broker.startup()

    async def kick(self, job_ids: Sequence[str]) -> None:
        for start in range(0, len(job_ids), KICK_CHUNK):
            chunk = job_ids[start : start + KICK_CHUNK]
            await asyncio.gather(*(self._task.kiq(job_id) for job_id in chunk))

    async def consume(self, handler: Handler, concurrency: int) -> None:
        from taskiq.acks import AcknowledgeType
        from taskiq.api import run_receiver_task

        self._handler = handler
        await run_receiver_task(
            self._broker,
            max_async_tasks=concurrency,
            ack_time=AcknowledgeType.WHEN_EXECUTED,
            run_startup=False,
        )

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._broker.shutdown()


def _forget(running: dict[str, asyncio.Task[None]], job_id: str) -> Callable[[asyncio.Task[None]], None]:
    def done(_task: asyncio.Task[None]) -> None:
        running.pop(job_id, None)

    return done


def _make_broker(settings: JobSettings, url: str) -> Any:
    if settings.broker == "rabbitmq":
        from taskiq_aio_pika import AioPikaBroker
        from taskiq_aio_pika.exchange import Exchange
        from taskiq_aio_pika.queue import Queue

        # One durable exchange and queue per queue_name, so several deployments can share a vhost.
        return AioPikaBroker(
            url,
            qos=settings.worker_concurrency,
            exchange=Exchange(name=settings.queue_name),
            task_queues=[Queue(name=settings.queue_name)],
            dead_letter_queue=Queue(name=f"{settings.queue_name}.dead_letter"),
        )
    return _reclaiming_stream_broker(settings, url)


def _reclaiming_stream_broker(settings: JobSettings, url: str) -> Any:
    from redis.asyncio import Redis
    from taskiq import AckableMessage
    from taskiq_redis import RedisStreamBroker

    class ReclaimingStreamBroker(RedisStreamBroker):
        """taskiq-redis (1.2) looks for messages a dead consumer left unacknowledged only after a read
        that brought new ones; once the stream goes quiet, what a killed worker held is never taken
        over. This listener also looks after an empty read."""

        async def listen(self) -> AsyncGenerator[AckableMessage, None]:
            async with Redis(connection_pool=self.connection_pool) as redis:
                while True:
                    fetched: Any = await redis.xreadgroup(
                        self.consumer_group_name,
                        self.consumer_name,
                        {self.queue_name: ">"},
                        block=self.block,
                        noack=False,
                        count=self.count,
                    )
                    for stream, messages in fetched or []:
                        for message_id, fields in messages:
                            yield AckableMessage(
                                data=fields[b"data"],
                                ack=self._ack_generator(id=message_id, queue_name=stream),
                            )
                    claimed: Any = await redis.xautoclaim(
                        self.queue_name,
                        self.consumer_group_name,
                        self.consumer_name,
                        min_idle_time=self.idle_timeout,
                        count=self.unacknowledged_batch_size,
                    )
                    for message_id, fields in claimed[1]:
                        if fields and b"data" in fields:
                            yield AckableMessage(
                                data=fields[b"data"],
                                ack=self._ack_generator(id=message_id, queue_name=self.queue_name),
                            )

    lease_ms = int(settings.lease_seconds * 1000)
    return ReclaimingStreamBroker(
        url,
        queue_name=settings.queue_name,
        consumer_group_name=settings.queue_name,
        consumer_id="0",  # a group created after units were queued still sees them
        idle_timeout=lease_ms,
        xread_count=settings.worker_concurrency,
        xread_block=min(2000, lease_ms),
        maxlen=STREAM_MAXLEN,
    )
