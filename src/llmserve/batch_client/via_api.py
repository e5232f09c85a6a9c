"""``--via-batch-api``: hand the lines to the server's OpenAI Batch API and collect the answers.

Upload (``POST /v1/files``, purpose=batch), create one batch per endpoint (a batch has one
``endpoint``, so mixed urls are split), poll ``GET /v1/batches/{id}``, then download the output and
error files into the output file. Ctrl-C cancels the batches and still downloads what completed.
Lines the server never answered (a cancelled or failed batch) get an error line, so the output names
every custom_id and a rerun knows what is left.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from llmserve.batch_client.http import (
    ClientConfig,
    HttpAnswer,
    error_of,
    is_retryable,
    open_session,
    request_json,
    retry_after_s,
    sleep_before_retry,
)
from llmserve.batch_client.lines import BatchRequest, encode, error_line, is_success, read_output_lines
from llmserve.batch_client.output import OutputWriter
from llmserve.batch_client.progress import BatchProgress
from llmserve.batch_client.summary import Summary

TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
CANCEL_WAIT_S = 120.0  # after Ctrl-C, how long to wait for the server to stop the batch


class BatchApiError(Exception):
    """The server refused or could not run the batch (message says why)."""


@dataclass
class RemoteBatch:
    url: str
    requests: list[BatchRequest]
    id: str = ""
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return str(self.state.get("status", ""))

    def counts(self) -> tuple[int, int, int]:
        counts = self.state.get("request_counts") or {}
        total = int(counts.get("total") or len(self.requests))
        return total, int(counts.get("completed") or 0), int(counts.get("failed") or 0)


class BatchApiClient:
    def __init__(self, session: aiohttp.ClientSession, config: ClientConfig, summary: Summary) -> None:
        self.session = session
        self.config = config
        self.summary = summary

    async def call(self, method: str, path: str, make_kwargs: Callable[[], dict[str, Any]]) -> HttpAnswer:
        """A control call, retried like a line; ``make_kwargs`` runs per attempt (a form is single-use)."""
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                answer = await request_json(
                    self.session, method, self.config.base_url + path, **make_kwargs()
                )
            except (TimeoutError, aiohttp.ClientError) as exc:
                failure = f"{method} {path}: {type(exc).__name__}: {exc}"
            else:
                if answer.status < 300:
                    return answer
                code, message = error_of(answer.body, answer.status)
                failure = f"{method} {path} answered {answer.status} ({code}): {message}"
                if answer.status == 404 and path.startswith("/v1/batches") and method == "POST":
                    failure += " - this server has no Batch API; run without --via-batch-api"
                if not is_retryable(answer.status):
                    raise BatchApiError(failure)
                retry_after = retry_after_s(answer.headers.get("retry-after"))
            if attempt >= self.config.retries:
                raise BatchApiError(failure)
            await sleep_before_retry(self.config, attempt, retry_after)
            attempt += 1
            self.summary.retries += 1

    async def start(self, batch: RemoteBatch) -> None:
        content = b"".join(encode(request.as_input_line()) for request in batch.requests)

        def form() -> dict[str, Any]:
            data = aiohttp.FormData()
            data.add_field("purpose", "batch")
            data.add_field("file", content, filename="batch-input.jsonl", content_type="application/jsonl")
            return {"data": data}

        uploaded = await self.call("POST", "/v1/files", form)
        file_id = _field(uploaded, "id")
        spec = {"input_file_id": file_id, "endpoint": batch.url, "completion_window": "24h"}
        created = await self.call("POST", "/v1/batches", lambda: {"json": spec})
        batch.id = _field(created, "id")
        batch.state = created.body

    async def refresh(self, batch: RemoteBatch) -> None:
        batch.state = (await self.call("GET", f"/v1/batches/{batch.id}", dict)).body

    async def cancel(self, batch: RemoteBatch) -> None:
        batch.state = (await self.call("POST", f"/v1/batches/{batch.id}/cancel", dict)).body

    async def download(self, file_id: str) -> list[dict[str, Any]]:
        answer = await self.call("GET", f"/v1/files/{file_id}/content", dict)
        return list(read_output_lines(answer.raw.decode("utf-8", errors="replace")))


def _field(answer: HttpAnswer, name: str) -> str:
    if not isinstance(answer.body, dict) or not answer.body.get(name):
        raise BatchApiError(f"unexpected answer (no '{name}'): {answer.raw[:300]!r}")
    return str(answer.body[name])


def split_by_url(requests: list[BatchRequest]) -> list[RemoteBatch]:
    batches: dict[str, RemoteBatch] = {}
    for request in requests:
        batches.setdefault(request.url, RemoteBatch(request.url, [])).requests.append(request)
    return list(batches.values())


async def _poll(
    client: BatchApiClient,
    batches: list[RemoteBatch],
    progress: BatchProgress,
    interval_s: float,
    wait_s: float | None = None,
) -> None:
    """Until every batch is in a final state (or ``wait_s`` passed), showing the server's counts."""
    deadline = None if wait_s is None else time.monotonic() + wait_s
    while True:
        counts = [batch.counts() for batch in batches if batch.id]
        progress.set_counts(
            completed=sum(c[1] for c in counts),
            failed=sum(c[2] for c in counts),
            total=sum(c[0] for c in counts) or None,
        )
        running = [batch for batch in batches if batch.id and batch.status not in TERMINAL]
        if not running or (deadline is not None and time.monotonic() > deadline):
            return
        await asyncio.sleep(interval_s)
        for batch in running:
            await client.refresh(batch)


def _why_missing(batch: RemoteBatch) -> str:
    if not batch.id:
        return "the batch was never created (interrupted)"
    errors = (batch.state.get("errors") or {}).get("data") or []
    if errors and isinstance(errors[0], dict):
        return f"batch {batch.id} failed: {errors[0].get('message', errors[0])}"
    return f"batch {batch.id} ended '{batch.status}' before this line ran"


async def _collect(
    client: BatchApiClient, batch: RemoteBatch, writer: OutputWriter, summary: Summary
) -> None:
    """Downloads the batch's output and error files; lines it has no answer for become error lines."""
    answered: set[str] = set()
    for key in ("output_file_id", "error_file_id"):
        file_id = batch.state.get(key) if batch.id else None
        if not file_id:
            continue
        for line in await client.download(str(file_id)):
            if line["custom_id"] in answered:
                continue
            answered.add(line["custom_id"])
            writer.write(line)
            summary.record(line, is_success(line))
    for request in batch.requests:
        if request.custom_id not in answered:
            line = error_line(request.custom_id, "not_processed", _why_missing(batch))
            writer.write(line)
            summary.record(line, ok=False)


async def run_via_api(
    requests: list[BatchRequest],
    config: ClientConfig,
    writer: OutputWriter,
    summary: Summary,
    progress: BatchProgress,
    poll_interval_s: float = 2.0,
) -> None:
    batches = split_by_url(requests)
    async with open_session(config) as session:
        client = BatchApiClient(session, config, summary)
        try:
            for batch in batches:
                await client.start(batch)
            progress.describe(", ".join(batch.id for batch in batches))
            await _poll(client, batches, progress, poll_interval_s)
        except asyncio.CancelledError:
            # Ctrl-C: take the cancellation back so the cleanup below can still talk to the server.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            summary.interrupted = True
            for batch in batches:
                if batch.id and batch.status not in TERMINAL:
                    await client.cancel(batch)
            await _poll(client, batches, progress, poll_interval_s, CANCEL_WAIT_S)
        for batch in batches:
            await _collect(client, batch, writer, summary)
