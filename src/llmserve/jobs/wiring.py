"""Builds the jobs subsystem for a process: services for the API, and the worker that runs units."""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass

from starlette.types import ASGIApp

from llmserve.config import Settings
from llmserve.jobs.async_jobs import AsyncJobService
from llmserve.jobs.batches import BatchService
from llmserve.jobs.brokers import Broker, DatabaseBroker, TaskiqBroker
from llmserve.jobs.files import FileService
from llmserve.jobs.invoke import AppInvoker
from llmserve.jobs.runner import UnitRunner
from llmserve.jobs.webhooks import WebhookSender
from llmserve.jobs.worker import JobWorker
from llmserve.services.keys import KeyService
from llmserve.storage.db import Database


@dataclass(frozen=True)
class Jobs:
    files: FileService
    batches: BatchService
    async_jobs: AsyncJobService
    worker: JobWorker


def worker_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


def build_broker(settings: Settings, database: Database) -> Broker:
    jobs = settings.jobs
    if jobs.broker == "database":
        return DatabaseBroker(database, jobs.poll_interval_seconds)
    url = jobs.broker_url or (settings.redis_url if jobs.broker == "redis" else None)
    if not url:
        raise ValueError(f"jobs.broker is {jobs.broker!r} but neither jobs.broker_url nor redis_url is set")
    return TaskiqBroker(jobs, url)


def build_jobs(app: ASGIApp, settings: Settings, database: Database, keys: KeyService | None) -> Jobs:
    jobs = settings.jobs
    broker = build_broker(settings, database)
    batches = BatchService(database, jobs, broker.kick)
    webhooks = WebhookSender(jobs) if jobs.webhook_secret is not None else None
    runner = UnitRunner(
        database, jobs, AppInvoker(app), batches, broker.kick, worker_id(), keys=keys, webhooks=webhooks
    )
    consume = jobs.run_in_server if jobs.run_in_server is not None else jobs.broker == "database"
    return Jobs(
        files=FileService(database, jobs.max_file_bytes, jobs.max_stored_bytes_per_owner),
        batches=batches,
        async_jobs=AsyncJobService(database, jobs, broker.kick),
        worker=JobWorker(database, jobs, broker, runner, batches, consume=consume),
    )
