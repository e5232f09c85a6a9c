"""Hand-written helpers for the webhook tests: unit (signatures, the SSRF guard) and e2e (deliveries to a
loopback receiver, in tests/e2e/jobs/test_webhooks.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pydantic import SecretStr

from llmserve.config import JobSettings
from llmserve.jobs.webhooks import Resolve, WebhookSender

SECRET = "whsec-test-0123456789abcdef"
PAYLOAD = {"id": "job_123", "status": "completed", "result": {"text": "héllo"}}


def job_settings(**fields: Any) -> JobSettings:
    fields.setdefault("webhook_allowed_hosts", ["127.0.0.1/32"])  # the receiver lives on loopback
    fields.setdefault("webhook_timeout_seconds", 2.0)
    return JobSettings(webhook_secret=SecretStr(SECRET), **fields)


@asynccontextmanager
async def sender_for(
    settings: JobSettings, resolve: Resolve | None = None, cap_s: float = 0.05
) -> AsyncIterator[WebhookSender]:
    sender = WebhookSender(settings, backoff_base_s=0.01, backoff_cap_s=cap_s, resolve=resolve)
    try:
        yield sender
    finally:
        await sender.close()


def fake_dns(*answers: list[str]) -> tuple[Resolve, list[str]]:
    """A resolver whose n-th lookup gets answers[n] (the last one repeats); records the hosts asked."""
    asked: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return answers[min(len(asked), len(answers)) - 1]

    return resolve, asked
