from __future__ import annotations

import asyncio

import pytest

from llmserve.config import CircuitBreakerSettings
from llmserve.errors import ContextLengthExceeded, InvalidRequest, ModelLoadFailed, Overloaded, UpstreamError
from llmserve.routing.breaker import CircuitBreaker, is_breaker_fault
from llmserve.routing.retry import is_retryable
from tests.unit.routing.fakes import FakeClock, upstream_error


def breaker(clock: FakeClock, **settings: float) -> CircuitBreaker:
    defaults: dict[str, float] = {
        "failure_threshold": 3,
        "error_rate_threshold": 0.5,
        "window_seconds": 30,
        "min_calls": 10,
        "cooldown_seconds": 15,
        "startup_grace_seconds": 0,  # the grace has its own tests below
    }
    return CircuitBreaker(CircuitBreakerSettings(**{**defaults, **settings}), clock)


def test_opens_after_consecutive_failures_and_refuses_calls() -> None:
    clock = FakeClock()
    b = breaker(clock)
    b.record_failure()
    b.record_failure()
    assert b.state == "closed" and b.allow()
    b.record_failure()
    assert b.state == "open"
    assert b.opened_at == clock.now
    assert not b.allow()
    assert b.seconds_until_half_open() == 15


def test_a_success_resets_the_consecutive_count() -> None:
    b = breaker(FakeClock(), min_calls=100)
    for _ in range(5):
        b.record_failure()
        b.record_failure()
        b.record_success()
    assert b.state == "closed"


def test_opens_on_error_rate_once_the_window_has_enough_calls() -> None:
    clock = FakeClock()
    b = breaker(clock, failure_threshold=100, min_calls=10, error_rate_threshold=0.5)
    for _ in range(4):  # 4 failed of 9: below min_calls, and below the rate
        b.record_failure()
        b.record_success()
    b.record_success()
    assert b.state == "closed"
    b.record_failure()  # 5 of 10 = 50%
    assert b.state == "open"


def test_calls_older_than_the_window_do_not_count() -> None:
    clock = FakeClock()
    b = breaker(clock, failure_threshold=100, min_calls=4, window_seconds=30)
    b.record_failure()
    b.record_failure()
    b.record_failure()
    clock.advance(31)
    b.record_success()
    b.record_success()
    b.record_success()
    b.record_failure()  # 1 of 4 in the window
    assert b.state == "closed"


def test_half_open_lets_exactly_one_probe_through_then_closes_on_success() -> None:
    clock = FakeClock()
    b = breaker(clock, failure_threshold=1, cooldown_seconds=15)
    b.record_failure()
    clock.advance(14.9)
    assert b.state == "open" and not b.would_allow()
    clock.advance(0.1)
    assert b.state == "half_open" and b.would_allow()
    assert b.allow()  # the probe
    assert not b.allow()  # a concurrent caller is refused while the probe runs
    assert not b.would_allow()
    b.record_success()
    assert b.state == "closed"
    assert b.allow() and b.allow()


def test_failed_probe_reopens_for_another_cooldown() -> None:
    clock = FakeClock()
    b = breaker(clock, failure_threshold=1, cooldown_seconds=10)
    b.record_failure()
    clock.advance(10)
    assert b.allow()
    b.record_failure()
    assert b.state == "open" and b.opened_at == clock.now
    clock.advance(9)
    assert not b.allow()
    clock.advance(1)
    assert b.allow()
    b.record_success()
    assert b.state == "closed"


def test_released_probe_lets_the_next_caller_probe() -> None:
    clock = FakeClock()
    b = breaker(clock, failure_threshold=1)
    b.record_failure()
    clock.advance(15)
    assert b.allow()
    b.release()  # the probe was cancelled, or was the client's own bad request
    assert b.state == "half_open"
    assert b.allow()


def test_a_lost_probe_does_not_wedge_the_breaker() -> None:
    clock = FakeClock()
    b = breaker(clock, failure_threshold=1, cooldown_seconds=15)
    b.record_failure()
    clock.advance(15)
    assert b.allow()
    clock.advance(15)  # the probe's caller never reported
    assert b.allow()


def test_late_results_while_open_do_not_change_the_cooldown() -> None:
    clock = FakeClock()
    b = breaker(clock, failure_threshold=1, cooldown_seconds=15)
    b.record_failure()
    opened = b.opened_at
    clock.advance(5)
    b.record_failure()
    b.record_success()
    assert b.state == "open" and b.opened_at == opened


@pytest.mark.parametrize(
    ("error", "fault", "retryable"),
    [
        (upstream_error(503), True, True),
        (upstream_error(429, retry_after=2), False, True),  # quota, not ill health
        (upstream_error(401), True, False),
        (upstream_error(403), True, False),
        (UpstreamError("slow", kind="timeout", retryable=True), True, True),
        (UpstreamError("cut", kind="protocol", retryable=True), True, True),
        (UpstreamError("refused", kind="connect", retryable=True), True, True),
        (TimeoutError(), True, True),
        (ModelLoadFailed("no weights"), True, True),
        (Overloaded("queue full"), False, True),
        (InvalidRequest("bad"), False, False),
        (ContextLengthExceeded("too long"), False, False),
        (asyncio.CancelledError(), False, False),
        (RuntimeError("bug"), False, False),
    ],
)
def test_fault_and_retry_classification(error: BaseException, fault: bool, retryable: bool) -> None:
    assert is_breaker_fault(error) is fault
    assert is_retryable(error) is retryable


def test_a_deployment_that_never_answered_is_probed_every_second_during_the_start_up_grace() -> None:
    # An upstream started a few seconds after the gateway used to stay behind an open breaker for the
    # whole cooldown (15 s of 503s) although it was up after 3 s.
    clock = FakeClock()
    b = breaker(clock, startup_grace_seconds=30)
    for _ in range(3):
        b.record_failure()
    assert b.state == "open" and b.seconds_until_half_open() == 1.0
    clock.advance(1)
    assert b.allow()  # the probe
    b.record_success()
    assert b.state == "closed"


def test_after_a_first_answer_or_after_the_grace_the_cooldown_is_whole_again() -> None:
    clock = FakeClock()
    answered = breaker(clock, startup_grace_seconds=30)
    answered.record_success()
    for _ in range(3):
        answered.record_failure()
    assert answered.seconds_until_half_open() == 15
    late = breaker(clock, startup_grace_seconds=30)
    clock.advance(31)
    for _ in range(3):
        late.record_failure()
    assert late.seconds_until_half_open() == 15
