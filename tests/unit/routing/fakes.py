"""Hand-written fakes for the router tests: a scripted provider, a fake clock, a recording sleep."""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmserve.config import CircuitBreakerSettings, ModelDeployment, RouterSettings
from llmserve.errors import UpstreamError
from llmserve.routing.breaker import CircuitBreaker
from llmserve.routing.deployment import Deployment, DeploymentStats
from llmserve.routing.router import Router
from llmserve.types import (
    ChatInput,
    ChatMessage,
    Choice,
    Completion,
    Delta,
    GenerationInput,
    StreamEvent,
    Usage,
)

REQUEST = ChatInput((ChatMessage("user", "hello"),))


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingSleep:
    """Records each backoff and moves the fake clock on instead of waiting."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.clock.advance(seconds)


class TopOfRangeRandom(random.Random):
    """Full jitter always picks the top of its range, so backoff delays are predictable."""

    def uniform(self, a: float, b: float) -> float:
        return b


@dataclass(frozen=True)
class FailAfter:
    """A stream outcome: ``events`` events, then ``error``."""

    events: int
    error: Exception


Outcome = Exception | FailAfter | None  # None: answer normally


def upstream_error(status: int = 503, *, retry_after: float | None = None) -> UpstreamError:
    return UpstreamError(
        f"upstream answered {status}",
        kind="status",
        retryable=status not in (400, 401, 403),
        upstream_status=status,
        retry_after=retry_after,
    )


class FakeProvider:
    """Answers with its own name as text; ``script`` says how each call goes (then ``default``)."""

    def __init__(
        self,
        name: str,
        *,
        script: Sequence[Outcome] = (),
        default: Outcome = None,
        delay: float = 0.0,
        gap: float = 0.0,
        usage: Usage = Usage(3, 2),
    ) -> None:
        self.name = name
        self.script: deque[Outcome] = deque(script)
        self.default = default
        self.delay = delay
        self.gap = gap  # between streamed events
        self.usage = usage
        self.calls = 0
        self.cancelled = 0
        self.streams_closed = 0
        self.streams_finished = 0

    def _next(self) -> Outcome:
        self.calls += 1
        return self.script.popleft() if self.script else self.default

    async def complete(self, request: GenerationInput) -> Completion:
        outcome = self._next()
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        if isinstance(outcome, Exception):
            raise outcome
        return Completion([Choice(0, self.name, "stop")], self.usage)

    async def stream(self, request: GenerationInput) -> AsyncIterator[StreamEvent]:
        outcome = self._next()
        events: list[StreamEvent] = [Delta(0, self.name), Delta(0, "!", "stop"), self.usage]
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            if isinstance(outcome, Exception):
                raise outcome
            for position, event in enumerate(events):
                if isinstance(outcome, FailAfter) and position == outcome.events:
                    raise outcome.error
                if position and self.gap:
                    await asyncio.sleep(self.gap)
                yield event
        except (GeneratorExit, asyncio.CancelledError):  # closed or cancelled by the consumer
            self.streams_closed += 1
            raise
        self.streams_finished += 1

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [[0.0] for _ in texts]

    async def count_tokens(self, request: GenerationInput) -> int:
        return 1

    async def close(self) -> None:
        return None


def deployment(
    fake: FakeProvider,
    clock: FakeClock,
    *,
    group: str = "g",
    breaker: CircuitBreakerSettings | None = None,
    **config: Any,
) -> Deployment:
    config.setdefault("model", "m")
    return Deployment(
        id=fake.name,
        group=group,
        config=ModelDeployment(name=group, **config),
        provider=fake,
        stats=DeploymentStats(alpha=0.5, clock=clock),
        breaker=CircuitBreaker(breaker or CircuitBreakerSettings(), clock),
    )


def router(
    groups: Mapping[str, Sequence[Deployment]],
    clock: FakeClock,
    *,
    sleep: RecordingSleep | None = None,
    rng: random.Random | None = None,
    **settings: Any,
) -> Router:
    settings.setdefault("backoff_base_seconds", 0.0)
    return Router(
        groups,
        RouterSettings(**settings),
        clock=clock,
        rng=rng or random.Random(7),
        sleep=sleep or RecordingSleep(clock),
    )
