"""LocalEngine: runs generations for one model on its own thread and streams them to asyncio.

One worker thread per model keeps the event loop free (torch releases the GIL in its kernels) and
queues concurrent requests in arrival order. A consumer that stops reading (a client disconnect)
sets a cancel flag that the decode loop checks every token, so the thread is free again within one
step. The performance issue replaces the one-at-a-time thread with a batching scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import anyio

from llmserve.engine.generation import Step, generate_steps
from llmserve.engine.loader import LoadedModel
from llmserve.engine.manager import ModelManager
from llmserve.engine.sampling import SamplingParams
from llmserve.errors import Overloaded

_END = object()


async def _wait_out(future: asyncio.Future[None]) -> None:
    """Awaits ``future`` through cancellation, then re-raises a cancellation that arrived meanwhile.

    An anyio cancel scope (Starlette cancels a streaming response when the client leaves) re-delivers
    its cancellation at every await, so a bare ``asyncio.shield`` returns at once; the shielded scope
    blocks those, and the loop covers a plain ``Task.cancel()``. The thread ends within one decode step.
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
    def __init__(self, manager: ModelManager, max_queued: int) -> None:
        self.manager = manager
        self._max_queued = max_queued
        self._pending = 0
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"engine-{manager.deployment.name}"
        )

    @property
    def pending(self) -> int:
        return self._pending

    async def stream(self, prompt_ids: list[int], params: SamplingParams) -> AsyncIterator[Step]:
        """Yields steps as the worker produces them; closing the iterator cancels the generation."""
        if self._pending >= self._max_queued:
            raise Overloaded(f"Model '{self.manager.deployment.name}' has {self._pending} requests queued")
        self._pending += 1
        cancel = threading.Event()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        try:
            async with self.manager.in_use() as loaded:
                future = loop.run_in_executor(
                    self._executor, self._run, loaded, prompt_ids, params, cancel, loop, queue
                )
                try:
                    while (item := await queue.get()) is not _END:
                        if isinstance(item, BaseException):
                            raise item
                        assert isinstance(item, Step)
                        yield item
                finally:
                    cancel.set()
                    # Wait for the thread to notice, so the model is never used after in_use() ends
                    # and in_flight stays truthful, even while this task is being cancelled.
                    await _wait_out(future)
        finally:
            self._pending -= 1

    @staticmethod
    def _run(
        loaded: LoadedModel,
        prompt_ids: list[int],
        params: SamplingParams,
        cancel: threading.Event,
        loop: asyncio.AbstractEventLoop,
        queue: asyncio.Queue[object],
    ) -> None:
        def put(item: object) -> None:
            # The loop may already be closed at shutdown; then nobody is waiting for the item.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(queue.put_nowait, item)

        try:
            if cancel.is_set():
                return  # the client left while this request waited for the thread
            for step in generate_steps(loaded, prompt_ids, params, cancel.is_set):
                put(step)
        except Exception as exc:  # handed to the awaiting coroutine, which re-raises it
            put(exc)
        finally:
            put(_END)

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        await self.manager.close()
