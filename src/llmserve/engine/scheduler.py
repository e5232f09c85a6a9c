"""BatchScheduler: continuous (iteration-level) batching of one local model's generations.

One thread per model runs the loop: at every token boundary it drops rows whose client left, admits
waiting requests into free slots (each prefilled alone, then merged into the running batch), runs
one decode step for all rows together and hands each row's new text to its asyncio consumer. Rows
leave as soon as they finish, so a short reply never waits for a long one. Each row keeps its own
sampling parameters, generator, stop strings and detokenizer (``Decoding``).

``max_wait`` applies only when the model is idle: the first request of a burst waits that long for
company so that the burst starts together. Once rows are running, newcomers join at the next token
boundary without any wait, because waiting there would delay every running stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque

import torch

from llmserve.engine.batch import Row, RunningBatch, supports_batching
from llmserve.engine.generation import Decoding
from llmserve.engine.request import GenerationTimeout, Request
from llmserve.errors import Overloaded

logger = logging.getLogger(__name__)

END = object()  # the last item a request's queue receives


def _deliver(items: list[tuple[Request, object]]) -> None:
    for request, item in items:
        request.queue.put_nowait(item)
        if item is END and not request.finished.done():
            request.finished.set_result(None)


class _Outbox:
    """Collects a step's output and hands it over with one wake-up per event loop, not per row."""

    def __init__(self) -> None:
        self._items: dict[asyncio.AbstractEventLoop, list[tuple[Request, object]]] = {}

    def put(self, request: Request, item: object) -> None:
        self._items.setdefault(request.loop, []).append((request, item))

    def end(self, request: Request, error: BaseException | None = None) -> None:
        if error is not None:
            self.put(request, error)
        self.put(request, END)

    def flush(self) -> None:
        items, self._items = self._items, {}
        for loop, batch in items.items():
            # The loop may already be closed at shutdown; then nobody is waiting for the items.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_deliver, batch)


class BatchScheduler:
    def __init__(self, name: str, max_batch_size: int, max_wait_s: float) -> None:
        self.name = name
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self._lock = threading.Condition()
        self._waiting: deque[Request] = deque()
        self._closing = False
        self._thread: threading.Thread | None = None
        # Touched by the scheduler thread only.
        self._batch: RunningBatch | None = None
        self._outbox = _Outbox()

    def submit(self, request: Request) -> None:
        with self._lock:
            if self._closing:
                raise Overloaded(f"Model '{self.name}' is shutting down")
            self._waiting.append(request)
            if self._thread is None:  # started on first use: nothing runs for a model never asked
                self._thread = threading.Thread(target=self._run, name=f"engine-{self.name}", daemon=True)
                self._thread.start()
            self._lock.notify()

    def withdraw(self, request: Request) -> bool:
        """Takes back a request that has not started yet; False once the scheduler has it."""
        with self._lock:
            try:
                self._waiting.remove(request)
            except ValueError:
                return False
            return True

    def close(self, timeout_s: float) -> None:
        """Blocking: stops the loop and fails what is left; waits up to ``timeout_s`` for one step."""
        with self._lock:
            self._closing = True
            self._lock.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)

    def _run(self) -> None:
        try:
            while (arrivals := self._next_arrivals()) is not None:
                try:
                    self._admit(arrivals)
                    self._step()
                except Exception as exc:  # a bug must not strand the other requests' consumers
                    logger.exception("batch step for model %s failed", self.name)
                    self._fail_running(exc)
                finally:
                    self._outbox.flush()
        finally:
            self._shut_down()

    def _next_arrivals(self) -> list[Request] | None:
        """Waiting requests that fit in the free slots; None when the scheduler is closing."""
        with self._lock:
            if self._batch is None:
                while not self._waiting and not self._closing:
                    self._lock.wait()
                self._gather_burst()
            if self._closing:
                return None
            model = self._batch.loaded if self._batch else self._waiting[0].loaded
            capacity = self.max_batch_size if supports_batching(model.model) else 1
            free = capacity - (len(self._batch) if self._batch else 0)
            self._expire_waiting()
            arrivals: list[Request] = []
            # A model reloaded after an idle unload is a new object: its requests wait for the old batch.
            while self._waiting and len(arrivals) < free and self._waiting[0].loaded is model:
                arrivals.append(self._waiting.popleft())
            return arrivals

    def _expire_waiting(self) -> None:
        """Fails waiting requests past their deadline. They wait in arrival order and share one timeout,
        so the expired ones are at the front: O(1) per step when none is."""
        now = time.monotonic()
        while self._waiting and self._waiting[0].deadline <= now:
            self._outbox.end(self._waiting.popleft(), self._timeout_error())

    def _timeout_error(self) -> GenerationTimeout:
        return GenerationTimeout(
            f"Model '{self.name}' did not start this generation in time (engine.request_timeout_seconds); "
            "retry later"
        )

    def _gather_burst(self) -> None:
        deadline = time.monotonic() + self.max_wait_s
        while len(self._waiting) < self.max_batch_size and not self._closing:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._lock.wait(remaining)

    def _admit(self, arrivals: list[Request]) -> None:
        joining: list[tuple[Row, object]] = []
        for request in arrivals:
            if self._batch is None:
                self._batch = RunningBatch(request.loaded, supports_batching(request.loaded.model))
            try:
                if (prefilled := self._prefill(self._batch, request)) is not None:
                    joining.append(prefilled)
            except Exception as exc:  # this prompt failed (too long, out of memory): only it ends
                logger.exception("prefill for model %s failed", self.name)
                self._outbox.end(request, exc)
            self._outbox.flush()  # its first token goes out now, not after the other prefills
        if self._batch is None or not joining:
            return
        try:
            self._batch.add(joining)
        except Exception as exc:  # e.g. out of memory while merging: the newcomers end, the batch runs on
            logger.exception("merging new requests into the batch of model %s failed", self.name)
            for row, _ in joining:
                self._outbox.end(row.request, exc)

    def _prefill(self, batch: RunningBatch, request: Request) -> tuple[Row, object] | None:
        decoding = Decoding(request.loaded, request.params)
        if request.deadline <= time.monotonic():
            self._outbox.end(request, self._timeout_error())
            return None
        if request.cancel.is_set() or decoding.finished:
            self._outbox.put(request, decoding.cancelled() if request.cancel.is_set() else decoding.empty())
            self._outbox.end(request)
            return None
        with torch.inference_mode():
            logits, cache = batch.prefill(request.prompt_ids)
        token = decoding.choose(logits)
        if not self._emit(request, decoding, token):
            return None
        return Row(request, decoding, len(request.prompt_ids), token), cache

    def _emit(self, request: Request, decoding: Decoding, token: int) -> bool:
        """Hands the token's text to the consumer; False when it was the request's last."""
        for step in decoding.accept(token):
            self._outbox.put(request, step)
        if decoding.finished:
            self._outbox.end(request)
        return not decoding.finished

    def _step(self) -> None:
        batch = self._batch
        if batch is None:
            return
        now = time.monotonic()
        batch.keep([row for row in batch.rows if not self._left(row, now)])
        if batch.rows:
            with torch.inference_mode():
                logits = batch.decode()
                greedy = logits.argmax(dim=-1).tolist()
            running = [
                row
                for index, row in enumerate(batch.rows)
                if self._advance(row, greedy[index] if row.decoding.plain_greedy else None, logits[index])
            ]
            batch.keep(running)
        if not batch.rows:
            self._batch = None  # an idle model holds no reference here: idle unload can free it

    def _left(self, row: Row, now: float) -> bool:
        """Ends a row whose client left, or whose deadline passed: that one keeps what it generated and
        ends as a max_tokens cut does (``empty()`` flushes held-back text, finish_reason 'length')."""
        if row.request.cancel.is_set():
            self._outbox.put(row.request, row.decoding.cancelled())
        elif row.request.deadline <= now:
            self._outbox.put(row.request, row.decoding.empty())
        else:
            return False
        self._outbox.end(row.request)
        return True

    def _advance(self, row: Row, greedy: int | None, logits: torch.Tensor) -> bool:
        token = greedy if greedy is not None else row.decoding.choose(logits)
        row.next_token = token
        return self._emit(row.request, row.decoding, token)

    def _fail_running(self, error: BaseException) -> None:
        if self._batch is not None:
            for row in self._batch.rows:
                self._outbox.end(row.request, error)
        self._batch = None

    def _shut_down(self) -> None:
        error = Overloaded(f"Model '{self.name}' is shutting down")
        self._fail_running(error)
        with self._lock:
            self._closing = True
            waiting, self._waiting = list(self._waiting), deque()
        for request in waiting:
            self._outbox.end(request, error)
        self._outbox.flush()
