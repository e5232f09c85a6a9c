"""ModelManager: one load for a burst of first requests, clear failures, idle unload."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from llmserve.config import ModelDeployment
from llmserve.engine.loader import LoadedModel
from llmserve.engine.manager import ModelManager
from llmserve.errors import ModelLoadFailed
from tests.polling import eventually


class CountingLoader:
    """Stands in for from_pretrained: slow, counts calls, can be told to fail."""

    def __init__(self, seconds: float = 0.2, fail: bool = False) -> None:
        self.seconds = seconds
        self.fail = fail
        self.calls = 0
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, deployment: ModelDeployment) -> LoadedModel:
        with self._lock:
            self.calls += 1
        self.threads.add(threading.current_thread().name)
        time.sleep(self.seconds)
        if self.fail:
            raise OSError("weights not found")
        import torch

        return LoadedModel(
            model=object(),
            tokenizer=object(),
            device=torch.device("cpu"),
            context_window=64,
            eos_token_ids=frozenset({0}),
        )


def deployment(**kwargs: object) -> ModelDeployment:
    return ModelDeployment(name="m", model="tiny-chat", **kwargs)


async def test_burst_of_first_requests_loads_once_off_the_event_loop() -> None:
    loader = CountingLoader()
    manager = ModelManager(deployment(), loader)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while manager.state != "ready":
            ticks += 1
            await asyncio.sleep(0.01)

    results = await asyncio.gather(ticker(), *(manager.get() for _ in range(20)))
    assert loader.calls == 1
    assert len({id(r) for r in results[1:]}) == 1
    assert ticks >= 5, "the event loop kept running while the model loaded"
    assert threading.main_thread().name not in loader.threads
    assert manager.state == "ready" and manager.ready_to_serve


async def test_failed_load_is_a_503_error_and_can_be_retried() -> None:
    loader = CountingLoader(seconds=0, fail=True)
    manager = ModelManager(deployment(), loader)
    with pytest.raises(ModelLoadFailed, match="weights not found"):
        await manager.get()
    assert manager.state == "failed" and "weights not found" in (manager.error or "")
    loader.fail = False
    await manager.get()
    assert manager.state == "ready" and loader.calls == 2


async def test_start_loading_in_background_then_ready() -> None:
    manager = ModelManager(deployment(), CountingLoader(seconds=0.1))
    manager.start_loading()
    assert manager.state == "loading" and not manager.ready_to_serve
    await eventually(lambda: manager.state == "ready", within=2.0)
    await manager.close()


async def test_idle_model_is_unloaded_but_stays_servable() -> None:
    loader = CountingLoader(seconds=0)
    manager = ModelManager(deployment(idle_unload_seconds=0.05), loader)
    async with manager.in_use():
        await asyncio.sleep(0.1)
        assert not await manager.unload_if_idle(), "never unload a model that is in use"
    await asyncio.sleep(0.1)
    assert await manager.unload_if_idle()
    assert manager.state == "unloaded" and manager.ready_to_serve
    await manager.get()
    assert loader.calls == 2
