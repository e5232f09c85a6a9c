"""Per-deployment circuit breaker: stop sending calls to a deployment that keeps failing.

closed ──(N consecutive faults, or error rate ≥ threshold over the window)──▶ open
open ──(cooldown elapsed)──▶ half_open: exactly one probe call goes through
half_open ──probe succeeds──▶ closed (counters reset) · ──probe fails──▶ open for another cooldown

Only faults of the deployment count (``is_breaker_fault``): a client's bad request says nothing about
its health, and neither does a 429 (the deployment is up, its quota is spent: the retry moves on).

Start-up grace: a deployment that has not answered once yet, within ``startup_grace_seconds`` of the
breaker's start, is probed again after ``STARTUP_PROBE_SECONDS`` instead of the whole cooldown. An
upstream started a few seconds after the gateway (one compose file, one deploy) then serves as soon as
it is up, not a cooldown later.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Literal

from llmserve.config import CircuitBreakerSettings
from llmserve.errors import ModelLoadFailed, UpstreamError

BreakerState = Literal["closed", "open", "half_open"]

STARTUP_PROBE_SECONDS = 1.0

# Upstream statuses that mean our credentials are refused: a fault of the deployment, not the client.
CREDENTIAL_STATUSES = frozenset({401, 403})


def is_breaker_fault(exc: BaseException) -> bool:
    """Whether ``exc`` says the deployment is unhealthy (and so counts toward opening its breaker)."""
    if isinstance(exc, UpstreamError):
        if exc.upstream_status == 429:
            return False
        return exc.retryable or exc.kind == "timeout" or exc.upstream_status in CREDENTIAL_STATUSES
    return isinstance(exc, (TimeoutError, asyncio.TimeoutError, ModelLoadFailed))


class CircuitBreaker:
    def __init__(
        self,
        settings: CircuitBreakerSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings or CircuitBreakerSettings()
        self._clock = clock
        self._state: BreakerState = "closed"
        self.opened_at: float | None = None
        self._consecutive_failures = 0
        self._calls: deque[tuple[float, bool]] = deque()  # (when, failed) within window_seconds
        self._window_failures = 0
        # When the half-open probe was let through; None while no probe runs.
        self._probe_started: float | None = None
        self._started = clock()
        self._ever_succeeded = False

    @property
    def state(self) -> BreakerState:
        if self._state == "open" and self._cooldown_left(self._clock()) <= 0:
            return "half_open"
        return self._state

    def seconds_until_half_open(self) -> float | None:
        """While open: how long until a probe may go through; otherwise None."""
        if self._state != "open":
            return None
        return max(0.0, self._cooldown_left(self._clock()))

    def would_allow(self) -> bool:
        """Whether ``allow()`` would let a call through now, without taking the half-open probe slot."""
        state = self.state
        if state == "closed":
            return True
        if state == "open":
            return False
        return not self._probe_running(self._clock())

    def allow(self) -> bool:
        """Let a call through? In half-open, the one caller told yes holds the probe until it reports."""
        state = self.state
        if state == "closed":
            return True
        if state == "open":
            return False
        now = self._clock()
        if self._probe_running(now):
            return False
        self._state = "half_open"
        self._probe_started = now
        return True

    def record_success(self) -> None:
        self._ever_succeeded = True
        if self._state == "half_open":
            self._close()
            return
        if self._state == "open":
            return  # a call that started before the breaker opened: the probe decides, not it
        self._consecutive_failures = 0
        self._add_call(self._clock(), failed=False)

    def record_failure(self) -> None:
        now = self._clock()
        if self._state == "half_open":
            self._open(now)
            return
        if self._state == "open":
            return  # a late failure of a call from before the opening; the cooldown stands
        self._consecutive_failures += 1
        self._add_call(now, failed=True)
        settings = self.settings
        calls = len(self._calls)
        if self._consecutive_failures >= settings.failure_threshold or (
            calls >= settings.min_calls and self._window_failures / calls >= settings.error_rate_threshold
        ):
            self._open(now)

    def release(self) -> None:
        """A call ended neither way (cancelled, or the client's own error): free the probe slot."""
        if self._state == "half_open":
            self._probe_started = None

    def _probe_running(self, now: float) -> bool:
        # A probe whose caller never reported (a bug, a lost task) must not wedge the breaker for good:
        # after one more cooldown another probe may go.
        return self._probe_started is not None and now - self._probe_started < self._cooldown()

    def _cooldown(self) -> float:
        cooldown = self.settings.cooldown_seconds
        opened_at = self.opened_at if self.opened_at is not None else self._clock()
        if not self._ever_succeeded and opened_at - self._started < self.settings.startup_grace_seconds:
            return min(cooldown, STARTUP_PROBE_SECONDS)
        return cooldown

    def _cooldown_left(self, now: float) -> float:
        assert self.opened_at is not None
        return self.opened_at + self._cooldown() - now

    def _add_call(self, now: float, *, failed: bool) -> None:
        self._calls.append((now, failed))
        self._window_failures += failed
        horizon = now - self.settings.window_seconds
        while self._calls and self._calls[0][0] <= horizon:
            _, old_failed = self._calls.popleft()
            self._window_failures -= old_failed

    def _open(self, now: float) -> None:
        self._state = "open"
        self.opened_at = now
        self._probe_started = None
        self._reset_counts()

    def _close(self) -> None:
        self._state = "closed"
        self.opened_at = None
        self._probe_started = None
        self._reset_counts()

    def _reset_counts(self) -> None:
        self._consecutive_failures = 0
        self._calls.clear()
        self._window_failures = 0
