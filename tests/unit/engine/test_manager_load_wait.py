"""The wait for a model's first load is noted for the request that waited, so the gateway-overhead
header (x-llmserve-overhead-ms) does not count loading a model as llmserve's own per-request cost."""

from __future__ import annotations

import asyncio
import contextvars
import time

from llmserve.config import ModelDeployment
from llmserve.engine.manager import ModelManager
from llmserve.observability.context import model_load_wait_var
from llmserve.routing.route_info import RouteInfo
from llmserve.services.chat.call import gateway_overhead_ms
from tests.unit.engine.test_manager import CountingLoader


async def _first_get(manager: ModelManager) -> float:
    await manager.get()
    return model_load_wait_var.get()


async def test_a_request_that_waits_for_the_load_notes_the_wait_and_a_later_one_notes_none() -> None:
    manager = ModelManager(ModelDeployment(name="m", model="m"), loader=CountingLoader(seconds=0.3))
    # Each request runs in its own task, with its own copy of the context.
    waited = await asyncio.create_task(_first_get(manager), context=contextvars.Context())
    assert waited >= 0.25
    assert await asyncio.create_task(_first_get(manager), context=contextvars.Context()) == 0.0


def test_the_overhead_leaves_out_what_the_request_waited_for_a_model_to_load() -> None:
    started = time.perf_counter() - 2.0  # the request arrived 2 s ago
    route = RouteInfo(group="m", upstream_seconds=0.5)

    def overhead_after_a_load(seconds: float) -> float:
        model_load_wait_var.set(seconds)
        return gateway_overhead_ms(route, started)

    assert contextvars.Context().run(overhead_after_a_load, 0.0) >= 1490
    assert contextvars.Context().run(overhead_after_a_load, 1.4) < 200
