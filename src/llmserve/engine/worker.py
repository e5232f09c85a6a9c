"""LocalEngine: streams one model's generations to asyncio; a BatchScheduler runs them in batches.

The scheduler's own thread does all model work, so the event loop stays free (torch releases the
GIL in its kernels). Concurrent requests decode together up to ``max_batch_size`` rows; more wait in
arrival order. A consumer that stops reading (a client disconnect) sets a cancel flag that the
scheduler checks at every token boundary, so its slot is free again within one step.

A generation still running ``request_timeout_s`` after it was submitted is stopped by the scheduler
at the next token boundary: it ends with what it has (finish_reason ``length``), or with
``GenerationTimeout`` (504) if it had not started. The provider runs a request's ``n`` choices one
after another, each one generation with its own deadline; ``max_total_tokens_per_request`` bounds
their sum.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import anyio

from llmserve.engine.generation import Step
from llmserve.engine.manager import ModelManager
from llmserve.engine.request import Request
from llmserve.engine.sampling import SamplingParams
from llmserve.engine.scheduler import END, BatchScheduler
from llmserve.errors import Overloaded

CLOSE_TIMEOUT_S = 5.0
# engine.request_timeout_seconds' default, for an engine built without the setting.
DEFAULT_REQUEST_TIMEOUT_S = 120.0


async def _wait_out(future: asyncio.Future[None]) -> None:
    """Awaits ``future`` through cancellation, then re-raises a cancellation that arrived meanwhile.

    An anyio cancel scope (Starlette cancels a streaming response when the client leaves) re-delivers
    its cancellation at every await, so a bare ``asyncio.shield`` returns at once; the shielded scope
    blocks those, and the loop covers a plain ``Task.cancel()``. The scheduler lets go within one step.
    """
    cancelled = False
    with anyio.CancelScope(shield=True):
        while not future.done():
            try:
                await asyncio.shield(future)
            except asyncio.CancelledError:
                cancelled = True
    if cancelled:
        raise asyncio.CancelledError


class LocalEngine:
    def __init__(
        self,
        manager: ModelManager,
        max_queued: int,
        max_batch_size: int = 16,
        max_wait_ms: float = 2.0,
        request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
    ) -> None:
        self.manager = manager
        self._max_queued = max_queued
        self.request_timeout_s = request_timeout_s  # engine.request_timeout_seconds
        self._pending = 0
        self._scheduler = BatchScheduler(manager.deployment.name, max_batch_size, max_wait_ms / 1000)

    @property
    def pending(self) -> int:
        return self._pending

    async def stream(self, prompt_ids: list[int], params: SamplingParams) -> AsyncIterator[Step]:
        """Yields steps as the scheduler produces them; closing the iterator cancels the generation."""
        if self._pending >= self._max_queued:
            raise Overloaded(f"Model '{self.manager.deployment.name}' has {self._pending} requests queued")
        self._pending += 1
        loop = asyncio.get_running_loop()
        try:
            async with self.manager.in_use() as loaded:
                request = Request(loaded, prompt_ids, params, loop, asyncio.Queue(), loop.create_future())
                request.deadline = time.monotonic() + self.request_timeout_s
                self._scheduler.submit(request)
                try:
                    while (item := await request.queue.get()) is not END:
                        if isinstance(item, BaseException):
                            raise item
                        assert isinstance(item, Step)
                        yield item
                finally:
                    request.cancel.set()
                    # Wait for the scheduler to let go, so the model is never used after in_use()
                    # ends and in_flight stays truthful, even while this task is being cancelled.
                    if not self._scheduler.withdraw(request):
                        await _wait_out(request.finished)
        finally:
            self._pending -= 1

    async def close(self) -> None:
        await asyncio.to_thread(self._scheduler.close, CLOSE_TIMEOUT_S)
        await self.manager.close()
