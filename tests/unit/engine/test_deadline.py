"""engine.request_timeout_seconds: a local generation that runs past its deadline stops at the next
token boundary with what it has (finish_reason 'length'), and one that never started gets 504, so one
long request cannot hold the engine for minutes (issue 14: n=16, max_tokens=400 held it 275 s)."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from llmserve.config import BUNDLED_MODEL_ID, EngineSettings, ModelDeployment
from llmserve.engine.generation import Step
from llmserve.engine.loader import LoadedModel
from llmserve.engine.manager import ModelManager
from llmserve.engine.request import GenerationTimeout, Request
from llmserve.engine.sampling import SamplingParams
from llmserve.engine.scheduler import END, BatchScheduler
from llmserve.engine.worker import DEFAULT_REQUEST_TIMEOUT_S, LocalEngine

TIMEOUT_S = 0.3
LONG = SamplingParams(max_tokens=400, ignore_eos=True)  # about 3 s of the bundled model, alone

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def engine_for(loaded: LoadedModel, max_batch_size: int = 4) -> LocalEngine:
    deployment = ModelDeployment(name=BUNDLED_MODEL_ID, model=BUNDLED_MODEL_ID)
    manager = ModelManager(deployment, lambda _: loaded)
    return LocalEngine(manager, 10, max_batch_size, 0.0, request_timeout_s=TIMEOUT_S)


async def generate(engine: LocalEngine) -> tuple[str, Step]:
    text, last = "", None
    async for step in engine.stream([1, 2, 3], LONG):
        text, last = text + step.text, step
    assert last is not None
    return text, last


def test_the_default_deadline_is_the_settings_default() -> None:
    assert EngineSettings().request_timeout_seconds == DEFAULT_REQUEST_TIMEOUT_S == 120


async def test_a_generation_past_its_deadline_ends_with_what_it_has(loaded: LoadedModel) -> None:
    engine = engine_for(loaded)
    try:
        started = time.monotonic()
        text, last = await generate(engine)
        elapsed = time.monotonic() - started
    finally:
        await engine.close()
    assert last.finish_reason == "length"
    assert 0 < last.completion_tokens < LONG.max_tokens
    assert text
    assert elapsed < TIMEOUT_S + 2.0, f"stopped {elapsed:.2f} s after submit"
    assert engine.pending == 0


async def test_every_row_of_a_batch_stops_at_its_deadline(loaded: LoadedModel) -> None:
    engine = engine_for(loaded)
    try:
        results = await asyncio.gather(*(generate(engine) for _ in range(3)))
    finally:
        await engine.close()
    assert [last.finish_reason for _, last in results] == ["length"] * 3
    assert all(last.completion_tokens < LONG.max_tokens for _, last in results)


async def drain(request: Request) -> list[object]:
    items = []
    while (item := await asyncio.wait_for(request.queue.get(), 10)) is not END:
        items.append(item)
    return items


def request_for(loaded: LoadedModel, params: SamplingParams, deadline: float) -> Request:
    loop = asyncio.get_running_loop()
    return Request(loaded, [1, 2, 3], params, loop, asyncio.Queue(), loop.create_future(), deadline=deadline)


async def test_a_request_still_waiting_at_its_deadline_gets_504(loaded: LoadedModel) -> None:
    scheduler = BatchScheduler(BUNDLED_MODEL_ID, max_batch_size=1, max_wait_s=0.0)
    running = request_for(loaded, SamplingParams(max_tokens=60, ignore_eos=True), math.inf)
    waiting = request_for(loaded, LONG, time.monotonic() + 0.05)  # expires behind the running one
    try:
        scheduler.submit(running)
        scheduler.submit(waiting)
        waited = await drain(waiting)
        ran = await drain(running)
    finally:
        await asyncio.to_thread(scheduler.close, 5.0)
    assert len(waited) == 1 and isinstance(waited[0], GenerationTimeout), waited
    assert waited[0].status_code == 504
    last = ran[-1]
    assert isinstance(last, Step) and last.finish_reason == "length" and last.completion_tokens == 60


async def test_a_request_past_its_deadline_when_its_turn_comes_gets_504(loaded: LoadedModel) -> None:
    scheduler = BatchScheduler(BUNDLED_MODEL_ID, max_batch_size=4, max_wait_s=0.0)
    late = request_for(loaded, LONG, time.monotonic() - 1)
    try:
        scheduler.submit(late)
        items = await drain(late)
    finally:
        await asyncio.to_thread(scheduler.close, 5.0)
    assert len(items) == 1 and isinstance(items[0], GenerationTimeout), items
