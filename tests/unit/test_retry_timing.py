"""Backoff bounds and the three forms of a server's Retry-After: how long a client waits before retrying."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from email.utils import formatdate

import pytest

from llmserve.retry_timing import backoff_delay, parse_retry_after

NOW = 1_700_000_000.0  # a fixed clock (epoch seconds)


class TopOfRange(random.Random):
    """Full jitter always picks the top of its range: the ceiling becomes visible."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_backoff_ceiling_doubles_per_attempt_up_to_the_cap() -> None:
    ceilings = [backoff_delay(attempt, 0.5, 3.0, TopOfRange()) for attempt in range(5)]
    assert ceilings == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_backoff_has_full_jitter_between_zero_and_the_ceiling() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(2, 1.0, 60.0, rng) for _ in range(500)]
    assert all(0.0 <= delay <= 4.0 for delay in delays)
    assert min(delays) < 0.5 and max(delays) > 3.5  # spread over the whole range, not bunched at the top


def test_backoff_without_an_rng_uses_the_random_module() -> None:
    assert all(0.0 <= backoff_delay(10, 1.0, 5.0) <= 5.0 for _ in range(100))
    assert len({backoff_delay(1, 1.0, 5.0) for _ in range(20)}) > 1


@pytest.mark.parametrize(("value", "seconds"), [("0", 0.0), ("7", 7.0), ("2.5", 2.5), (" 120 ", 120.0)])
def test_delta_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value) == seconds


def test_milliseconds_win_over_retry_after() -> None:
    assert parse_retry_after("30", "1500") == 1.5
    assert parse_retry_after(None, "250") == 0.25


def test_unreadable_milliseconds_fall_back_to_retry_after() -> None:
    assert parse_retry_after("4", "soon") == 4.0
    assert parse_retry_after(None, "soon") is None


# 08:49:37 GMT on 6 November 1994 in the three forms RFC 9110 obliges a recipient to read.
DATE_FORMS = ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"]
NINETY_SECONDS_BEFORE = datetime(1994, 11, 6, 8, 48, 7, tzinfo=UTC).timestamp()


@pytest.mark.parametrize("date", DATE_FORMS)
def test_http_date_is_the_seconds_until_it(date: str) -> None:
    assert parse_retry_after(date, now=NINETY_SECONDS_BEFORE) == pytest.approx(90.0)


def test_http_date_against_the_real_clock() -> None:
    delay = parse_retry_after(formatdate(time.time() + 10, usegmt=True))
    assert delay is not None and 8 <= delay <= 10


def test_a_date_in_the_past_or_a_negative_number_asks_for_no_wait() -> None:
    assert parse_retry_after(formatdate(NOW - 3600, usegmt=True), now=NOW) == 0.0
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("10", "-5") == 0.0


@pytest.mark.parametrize("junk", [None, "", "soon", "nan", "inf", "-inf", "1e999", "Mon, 99 Foo 2024", "12s"])
def test_junk_is_none(junk: str | None) -> None:
    assert parse_retry_after(junk) is None
    assert parse_retry_after(junk, junk) is None
