"""Direct mode: every line's body POSTed to ``<server><url>``, N at a time, each answer written at once.

N workers pull from one shared iterator rather than one task per line, so a million-line file costs N
tasks, not a million, and the server never sees more than N requests from this run at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from llmserve.batch_client.http import (
    ClientConfig,
    error_of,
    is_retryable,
    open_session,
    request_json,
    retry_after_s,
    sleep_before_retry,
)
from llmserve.batch_client.lines import BatchRequest, error_line, success_line
from llmserve.batch_client.output import OutputWriter
from llmserve.batch_client.progress import BatchProgress
from llmserve.batch_client.summary import COST_HEADER, Summary


@dataclass
class Outcome:
    line: dict[str, Any]
    ok: bool
    retries: int
    cost_header: str | None = None


async def send_one(session: aiohttp.ClientSession, config: ClientConfig, request: BatchRequest) -> Outcome:
    """One line, retried as ``http`` says; always returns an output line, never raises on failure."""
    url = config.base_url + request.url
    payload = orjson.dumps(request.body)
    headers = {"Content-Type": "application/json"}
    attempt = 0
    while True:
        retry_after: float | None = None
        try:
            answer = await request_json(session, request.method, url, data=payload, headers=headers)
        except TimeoutError:
            line = error_line(request.custom_id, "timeout", f"no answer within {config.timeout_s:g}s")
        except aiohttp.ClientError as exc:
            line = error_line(request.custom_id, "connection_error", f"{type(exc).__name__}: {exc}")
        else:
            request_id = answer.headers.get("x-request-id", "")
            if 200 <= answer.status < 300 and isinstance(answer.body, dict):
                line = success_line(request.custom_id, answer.status, request_id, answer.body)
                return Outcome(line, True, attempt, answer.headers.get(COST_HEADER))
            if 200 <= answer.status < 300:
                code, message = "invalid_response", "the server answered with a body that is not JSON"
            else:
                code, message = error_of(answer.body, answer.status)
            body = answer.body if answer.body is not None else answer.raw.decode(errors="replace")[:2000]
            line = error_line(
                request.custom_id, code, message, status=answer.status, request_id=request_id, body=body
            )
            if not is_retryable(answer.status) and answer.status >= 300:
                return Outcome(line, False, attempt)
            retry_after = retry_after_s(answer.headers.get("retry-after"))
        if attempt >= config.retries:
            return Outcome(line, False, attempt)
        await sleep_before_retry(config, attempt, retry_after)
        attempt += 1


async def run_direct(
    requests: Iterable[BatchRequest],
    config: ClientConfig,
    writer: OutputWriter,
    summary: Summary,
    progress: BatchProgress,
) -> None:
    pending: Iterator[BatchRequest] = iter(requests)

    async def worker(session: aiohttp.ClientSession) -> None:
        for request in pending:  # a shared iterator: each line goes to exactly one worker
            outcome = await send_one(session, config, request)
            writer.write(outcome.line)
            summary.retries += outcome.retries
            summary.record(outcome.line, outcome.ok, outcome.cost_header)
            progress.advance(ok=outcome.ok)

    async with open_session(config) as session, asyncio.TaskGroup() as group:
        for _ in range(config.concurrency):
            group.create_task(worker(session))
