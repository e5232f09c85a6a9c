"""The one pooled aiohttp session both modes share, and the retry rules for a single request.

Retried: connection errors, timeouts, 408, 409, 429 and every 5xx, with exponential backoff and full
jitter (so a thousand lines that failed together do not come back together), honouring Retry-After.
Any other 4xx is the request's own fault and final: sending it again would fail the same way.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from llmserve.retry_timing import backoff_delay, parse_retry_after

RETRYABLE_4XX = frozenset({408, 409, 429})
MAX_RETRY_AFTER_S = 300.0  # a server asking for longer is better retried on the next run


@dataclass(frozen=True)
class ClientConfig:
    server: str
    api_key: str | None = None
    concurrency: int = 8
    retries: int = 5
    timeout_s: float = 600.0
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 30.0

    @property
    def base_url(self) -> str:
        # Users often paste an OpenAI-style base URL ending in /v1; the line urls already carry it.
        base = self.server.rstrip("/")
        return base[: -len("/v1")] if base.endswith("/v1") else base

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


def open_session(config: ClientConfig) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=max(config.concurrency, 1))
    timeout = aiohttp.ClientTimeout(total=config.timeout_s, sock_connect=min(30.0, config.timeout_s))
    return aiohttp.ClientSession(connector=connector, timeout=timeout, headers=config.headers())


def is_retryable(status: int) -> bool:
    return status in RETRYABLE_4XX or status >= 500


def backoff_s(config: ClientConfig, attempt: int) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return backoff_delay(attempt, config.backoff_base_s, config.backoff_cap_s)


def retry_after_s(value: str | None) -> float | None:
    """Retry-After as seconds (it may be a number of seconds or an HTTP date), at most
    ``MAX_RETRY_AFTER_S``; None if absent/garbled."""
    seconds = parse_retry_after(value)
    return None if seconds is None else min(seconds, MAX_RETRY_AFTER_S)


@dataclass
class HttpAnswer:
    status: int
    body: Any  # parsed JSON, or None when the body was not JSON
    raw: bytes
    headers: dict[str, str]


async def request_json(session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> HttpAnswer:
    async with session.request(method, url, **kwargs) as response:
        raw = await response.read()
        headers = {name.lower(): value for name, value in response.headers.items()}
    try:
        body = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = None
    return HttpAnswer(response.status, body, raw, headers)


def error_of(body: Any, status: int) -> tuple[str, str]:
    """(code, message) from an OpenAI-style error body, or made up from the status."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = error.get("code") or error.get("type") or f"http_{status}"
        return str(code), str(error.get("message") or f"HTTP {status}")
    if isinstance(error, str):
        return f"http_{status}", error
    return f"http_{status}", f"HTTP {status}"


async def sleep_before_retry(config: ClientConfig, attempt: int, retry_after: float | None) -> None:
    await asyncio.sleep(retry_after if retry_after is not None else backoff_s(config, attempt))
