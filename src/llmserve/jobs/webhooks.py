"""Signed webhook delivery for finished async jobs.

``WebhookSender`` POSTs a job's event to its callback URL, signed as ``webhook_signing`` describes,
and retries with capped exponential backoff (or the receiver's Retry-After, seconds or date). Every
attempt goes through the SSRF guard of ``callback_guard`` first, and its connection through the
guard's resolver. The names of both modules stay importable from here, where receivers and the API
have always found them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from yarl import URL

from llmserve import __version__
from llmserve.config import JobSettings
from llmserve.errors import InvalidRequest
from llmserve.jobs.callback_guard import (
    CODE_DISABLED,
    CODE_INVALID,
    CODE_REFUSED,
    CODE_UNRESOLVABLE,
    MAX_URL_LENGTH,
    AddressRefused,
    GuardedResolver,
    IPAddress,
    Resolve,
    check_callback_url,
    checked_url,
    require_secret,
    resolve_host,
)
from llmserve.jobs.webhook_signing import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
    verify,
)
from llmserve.retry_timing import backoff_delay, parse_retry_after

__all__ = [
    "CODE_DISABLED",
    "CODE_INVALID",
    "CODE_REFUSED",
    "CODE_UNRESOLVABLE",
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "MAX_URL_LENGTH",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "DeliveryResult",
    "IPAddress",
    "Resolve",
    "WebhookSender",
    "check_callback_url",
    "require_secret",
    "sign",
    "verify",
]

logger = logging.getLogger(__name__)

_RETRY_STATUSES = frozenset({408, 429})


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    delivered: bool
    attempts: int  # tries that sent a request or failed to reach the host; a refused URL is not one
    status: int | None  # HTTP status of the last answer, None when none came
    error: str | None  # why the last try failed; None once delivered
    delivery_id: str = ""


@dataclass(frozen=True, slots=True)
class _Attempt:
    """One try's outcome: delivered when ``error`` is None; ``retry`` says whether another may help."""

    status: int | None
    error: str | None
    retry: bool
    retry_after: float | None = None


class WebhookSender:
    """Delivers signed job events to callback URLs, retrying with capped exponential backoff.

    One per process (built in the lifespan, closed on shutdown). Redirects are never followed: a
    receiver could otherwise bounce the request to an internal address the checks never saw.
    """

    def __init__(
        self,
        settings: JobSettings,
        *,
        backoff_base_s: float = 1.0,
        backoff_cap_s: float = 60.0,
        resolve: Resolve | None = None,
    ) -> None:
        self._settings = settings
        self._base = backoff_base_s
        self._cap = backoff_cap_s
        self._resolve = resolve or resolve_host
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # aiohttp wants its session created inside the running loop
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(self._settings, self._resolve),
                use_dns_cache=False,  # every new connection goes through the guarded resolver
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                # Receivers belong to different tenants: none may set cookies the others then get.
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=self._settings.webhook_timeout_seconds),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def deliver(self, url: str, event: str, payload: Mapping[str, Any]) -> DeliveryResult:
        """POSTs ``payload`` to ``url`` until a 2xx, a final refusal, or webhook_max_attempts tries."""
        if self._settings.webhook_secret is None:
            raise RuntimeError("webhook delivery needs jobs.webhook_secret; refuse callback_url earlier")
        secret = self._settings.webhook_secret.get_secret_value().encode()
        body = orjson.dumps(payload)
        delivery_id = f"whd_{uuid.uuid4().hex}"
        attempts = 0
        last = _Attempt(status=None, error="not attempted", retry=False)
        for attempt in range(1, self._settings.webhook_max_attempts + 1):
            if attempt > 1:
                await asyncio.sleep(self._delay(attempt - 1, last.retry_after))
            try:
                target = await checked_url(url, self._settings, self._resolve)
            except InvalidRequest as exc:
                if exc.code != CODE_UNRESOLVABLE:  # refused now: DNS changed since the job was taken
                    last = _Attempt(status=last.status, error=exc.message, retry=False)
                    break
                attempts += 1
                last = _Attempt(status=None, error=exc.message, retry=True)
                continue
            attempts += 1
            last = await self._post(target, event, body, secret, delivery_id)
            if last.error is None or not last.retry:
                break
            logger.info("webhook %s to %s failed (try %d): %s", delivery_id, target.host, attempt, last.error)
        if last.error is not None:
            logger.warning("webhook %s not delivered after %d tries: %s", delivery_id, attempts, last.error)
        return DeliveryResult(last.error is None, attempts, last.status, last.error, delivery_id)

    def _delay(self, retry: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self._cap)
        return backoff_delay(retry - 1, self._base, self._cap)

    async def _post(self, target: URL, event: str, body: bytes, secret: bytes, delivery_id: str) -> _Attempt:
        timestamp = int(time.time())  # per try, so a late retry still passes the receiver's tolerance
        headers = {
            "content-type": "application/json",
            "user-agent": f"llmserve-webhook/{__version__}",
            SIGNATURE_HEADER: f"sha256={sign(secret, timestamp, body)}",
            TIMESTAMP_HEADER: str(timestamp),
            EVENT_HEADER: event,
            DELIVERY_HEADER: delivery_id,
        }
        try:
            async with self._client().post(target, data=body, headers=headers, allow_redirects=False) as resp:
                status = resp.status
                retry_after = parse_retry_after(resp.headers.get("retry-after"))
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, AddressRefused):
                return _Attempt(status=None, error=str(exc.os_error), retry=False)
            return _Attempt(status=None, error=f"cannot connect: {exc.os_error}", retry=True)
        except TimeoutError:  # before ClientError: aiohttp's timeouts subclass both
            timeout = self._settings.webhook_timeout_seconds
            return _Attempt(status=None, error=f"no answer within {timeout:g}s", retry=True)
        except aiohttp.InvalidURL as exc:
            return _Attempt(status=None, error=f"invalid callback_url: {exc}", retry=False)
        except aiohttp.ClientError as exc:
            return _Attempt(status=None, error=f"connection failed: {exc!r}", retry=True)
        if 200 <= status < 300:
            return _Attempt(status=status, error=None, retry=False)
        if 300 <= status < 400:
            return _Attempt(
                status=status, error=f"answered {status}; redirects are not followed", retry=False
            )
        retry = status >= 500 or status in _RETRY_STATUSES
        return _Attempt(status=status, error=f"answered {status}", retry=retry, retry_after=retry_after)
