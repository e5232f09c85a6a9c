"""The router: pick a deployment of a model group, retry on another, fall back to other groups, hedge.

For one request: try the group's deployments in the strategy's order (``retries`` extra tries, with
backoff that honours Retry-After); when the group is exhausted, its ``fallbacks`` in order; a prompt
too long for the group goes to its ``context_window_fallbacks`` instead. A stream fails over only
before its first event: ``stream()`` returns once that event is in hand.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from llmserve.config import RouterSettings
from llmserve.errors import (
    ContextLengthExceeded,
    ModelNotFound,
    NoDeploymentAvailable,
    RateLimited,
    UpstreamError,
)
from llmserve.observability.context import model_load_wait_var
from llmserve.routing.calls import RoutedStream, call_complete, open_stream
from llmserve.routing.complexity import ComplexityClassifier
from llmserve.routing.deployment import Deployment
from llmserve.routing.retry import backoff_delay, final_error, is_retryable, may_fail_over
from llmserve.routing.route_info import RouteInfo
from llmserve.routing.strategies import STRATEGIES, eligible
from llmserve.types import Completion, GenerationInput

if TYPE_CHECKING:
    from llmserve.observability.metrics import Metrics

logger = logging.getLogger(__name__)

AUTO_MODEL = "auto"
# Sleep this much past a cap's window, so the window has surely moved on when we wake.
CAP_WAIT_MARGIN_SECONDS = 0.01

T = TypeVar("T")


@dataclass(frozen=True)
class _CallKind(Generic[T]):
    start: Callable[[Deployment], Coroutine[Any, Any, T]]
    # Frees a result nobody will use (a hedge that also answered).
    discard: Callable[[T], Awaitable[None]]


@dataclass
class _GroupRun:
    """One group's tries for one request."""

    group: str
    deployments: tuple[Deployment, ...]
    tried: list[str] = field(default_factory=list)
    # Not tried again for this request: refused our key, or asked for a longer wait than we allow.
    excluded: set[str] = field(default_factory=set)
    # Retry-After of this request's failed calls: that deployment is retried only after this time.
    not_before: dict[str, float] = field(default_factory=dict)


class _GroupExhausted(Exception):
    pass


class Router:
    def __init__(
        self,
        groups: Mapping[str, Sequence[Deployment]],
        settings: RouterSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        metrics: Metrics | None = None,
    ) -> None:
        self._groups = {name: tuple(deployments) for name, deployments in groups.items()}
        self.settings = settings
        self._clock = clock
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._metrics = metrics
        self._strategy = STRATEGIES[settings.strategy]
        self._complexity = ComplexityClassifier(settings.complexity)

    def groups(self) -> list[str]:
        return list(self._groups)

    def deployments(self, group: str) -> tuple[Deployment, ...]:
        try:
            return self._groups[group]
        except KeyError:
            raise ModelNotFound(
                f"The model '{group}' does not exist or you do not have access to it.", param="model"
            ) from None

    def snapshot(self) -> list[dict[str, object]]:
        return [deployment.snapshot() for group in self._groups.values() for deployment in group]

    def resolve_group(
        self, model: str | None, request: GenerationInput, requirements: str | None, default_group: str
    ) -> str:
        """The group a request goes to; ``auto`` picks one by complexity (see ``complexity``)."""
        if model != AUTO_MODEL:
            return model or default_group
        tier = self._complexity.classify(request, requirements)
        return self._complexity.group_for(tier) or default_group

    async def complete(self, group: str, request: GenerationInput) -> tuple[Completion, RouteInfo]:
        info = RouteInfo(group)

        async def discard(_: Completion) -> None:
            return None

        call = _CallKind(lambda d: call_complete(d, request, self._clock, info.attempts), discard)
        return await self._route(group, info, call), info

    async def stream(self, group: str, request: GenerationInput) -> tuple[RoutedStream, RouteInfo]:
        """Returns once the first event is in hand; the caller must exhaust or ``aclose()`` the stream."""
        info = RouteInfo(group)

        async def discard(stream: RoutedStream) -> None:
            await stream.aclose()

        call = _CallKind(lambda d: open_stream(d, request, info, self._clock), discard)
        return await self._route(group, info, call), info

    async def _route(self, group: str, info: RouteInfo, call: _CallKind[T]) -> T:
        self.deployments(group)
        errors: list[Exception] = []
        queue = [group, *self.settings.fallbacks.get(group, ())]
        visited: set[str] = set()
        while queue:
            current = queue.pop(0)
            if current in visited or current not in self._groups:
                continue
            visited.add(current)
            info.group = current
            info.fallback_used = current != group
            try:
                return await self._run_group(current, info, call, errors)
            except ContextLengthExceeded:
                larger = [
                    g for g in self.settings.context_window_fallbacks.get(current, ()) if g not in visited
                ]
                if not larger:
                    raise
                logger.info("prompt too long for %s; trying %s", current, larger)
                queue = larger
            except _GroupExhausted:
                if queue:
                    logger.warning("group %s failed (%s); falling back to %s", current, errors[-1], queue)
        raise final_error(errors, group)

    async def _run_group(self, group: str, info: RouteInfo, call: _CallKind[T], errors: list[Exception]) -> T:
        run = _GroupRun(group, self._groups[group])
        for retry in range(self.settings.retries + 1):
            try:
                order = await self._next_order(run, retry, info)
            except (RateLimited, NoDeploymentAvailable) as exc:
                errors.append(exc)
                raise _GroupExhausted from None
            try:
                return await self._attempt(run, order, info, call, errors)
            except NoDeploymentAvailable as exc:  # every breaker refused at the last moment
                errors.append(exc)
                raise _GroupExhausted from None
            except Exception as exc:
                if not may_fail_over(exc):
                    raise
        raise _GroupExhausted

    def _order(self, run: _GroupRun) -> list[Deployment]:
        order = self._strategy(self._eligible(run), self._rng)
        tried, now = set(run.tried), self._clock()
        # A retry goes elsewhere unless nothing else is left: deployments still inside their
        # Retry-After last, then those already tried.
        return sorted(order, key=lambda d: (run.not_before.get(d.id, now) > now, d.id in tried))

    def _eligible(self, run: _GroupRun) -> list[Deployment]:
        return eligible(run.group, [d for d in run.deployments if d.id not in run.excluded])

    async def _next_order(self, run: _GroupRun, retry: int, info: RouteInfo) -> list[Deployment]:
        if retry == 0:
            return self._order(run)
        settings = self.settings
        delay = backoff_delay(
            retry - 1, settings.backoff_base_seconds, settings.backoff_max_seconds, self._rng
        )
        try:
            order = self._order(run)
        except RateLimited as exc:
            # Every deployment left is at its rpm/tpm/concurrency cap: wait, if that is soon enough.
            if exc.retry_after is None or exc.retry_after > settings.max_retry_after_seconds:
                raise
            delay = max(delay, exc.retry_after + CAP_WAIT_MARGIN_SECONDS)
        else:
            if order[0].id not in run.tried:
                # Backoff spares an upstream that just failed; one not tried yet has no reason to wait.
                delay = 0.0
            # Only deployments that asked us to wait are left: honour the Retry-After.
            delay = max(delay, run.not_before.get(order[0].id, 0.0) - self._clock())
        await self._pause(delay, info)
        return self._order(run)

    async def _pause(self, seconds: float, info: RouteInfo) -> None:
        if seconds <= 0:
            return
        started = self._clock()
        await self._sleep(seconds)
        info.upstream_seconds += self._clock() - started

    async def _attempt(
        self,
        run: _GroupRun,
        order: list[Deployment],
        info: RouteInfo,
        call: _CallKind[T],
        errors: list[Exception],
    ) -> T:
        # allow() takes a half-open probe slot, so ask only until one deployment says yes.
        chosen = next((i for i, deployment in enumerate(order) if deployment.breaker.allow()), None)
        if chosen is None:  # a concurrent caller took the only half-open probe slot
            raise NoDeploymentAvailable(f"No deployment of '{run.group}' is available right now")
        primary, spares = order[chosen], order[chosen + 1 :]
        self._start(run, primary, info)
        started, load_wait_before = self._clock(), model_load_wait_var.get()
        try:
            if self.settings.hedge_after_ms is None or not spares:
                try:
                    result = await call.start(primary)
                except Exception as exc:
                    self._note_failure(run, primary, exc, errors)
                    raise
                info.deployment = primary.id
                return result
            return await self._hedged(run, primary, spares, info, call, errors)
        finally:
            info.upstream_seconds += self._clock() - started
            model_load_wait_var.set(load_wait_before)  # a load inside the call is upstream time already

    async def _hedged(
        self,
        run: _GroupRun,
        primary: Deployment,
        spares: list[Deployment],
        info: RouteInfo,
        call: _CallKind[T],
        errors: list[Exception],
    ) -> T:
        """Call ``primary``; if it has not answered within hedge_after_ms, also the next spare. The
        first answer wins, the other call is cancelled; a failure waits for the other call."""
        assert self.settings.hedge_after_ms is not None
        tasks: dict[asyncio.Task[T], Deployment] = {asyncio.create_task(call.start(primary)): primary}
        winner: asyncio.Task[T] | None = None
        try:
            done, _ = await asyncio.wait(tasks, timeout=self.settings.hedge_after_ms / 1000)
            if not done and (backup := self._backup(spares)) is not None:
                self._start(run, backup, info)
                tasks[asyncio.create_task(call.start(backup))] = backup
            pending: set[asyncio.Task[T]] = set(tasks)
            failure: Exception | None = None
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    exc = task.exception()
                    if exc is None:
                        winner = task
                        info.deployment = tasks[task].id
                        return task.result()
                    if not isinstance(exc, Exception):
                        raise exc
                    self._note_failure(run, tasks[task], exc, errors)
                    if not may_fail_over(exc):
                        raise exc
                    failure = exc
            assert failure is not None
            raise failure
        finally:
            await self._drop_losers(tasks, winner, call)

    @staticmethod
    async def _drop_losers(
        tasks: Mapping[asyncio.Task[T], Deployment], winner: asyncio.Task[T] | None, call: _CallKind[T]
    ) -> None:
        losers = [task for task in tasks if task is not winner]
        for task in losers:
            task.cancel()
        for outcome in await asyncio.gather(*losers, return_exceptions=True):
            if not isinstance(outcome, BaseException):  # it answered too, in the same instant
                await call.discard(outcome)

    def _backup(self, spares: list[Deployment]) -> Deployment | None:
        for deployment in spares:
            if deployment.capacity_wait() is None and deployment.breaker.allow():
                return deployment
        return None

    @staticmethod
    def _start(run: _GroupRun, deployment: Deployment, info: RouteInfo) -> None:
        run.tried.append(deployment.id)
        info.attempts += 1

    def _note_failure(
        self, run: _GroupRun, deployment: Deployment, exc: Exception, errors: list[Exception]
    ) -> None:
        if not may_fail_over(exc):
            return  # the client's error or a bug: raised as it is, not collected
        errors.append(exc)
        if self._metrics is not None:
            self._metrics.deployment_failure(deployment.id)
        retry_after = getattr(exc, "retry_after", None)
        if not is_retryable(exc) or (
            retry_after is not None and retry_after > self.settings.max_retry_after_seconds
        ):
            run.excluded.add(deployment.id)
        elif isinstance(exc, UpstreamError) and retry_after:
            run.not_before[deployment.id] = self._clock() + retry_after
        logger.warning("deployment %s failed: %s", deployment.id, exc)
