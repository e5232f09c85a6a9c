"""When to try again: exponential backoff with full jitter, and what a server's Retry-After asks for.

On the ground floor (it imports nothing of llmserve), so providers, routing, jobs and the batch client
all retry by the same arithmetic and read the same header forms.
"""

from __future__ import annotations

import math
import random
import time
from datetime import UTC
from email.utils import parsedate_to_datetime


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)].

    Full jitter rather than a fixed delay: callers that failed together (the lines of one batch, the
    receivers of one outage) do not all come back at the same moment. ``attempt`` counts from 0;
    ``rng`` defaults to the ``random`` module's generator (tests pass a seeded or scripted one).
    """
    uniform = random.uniform if rng is None else rng.uniform
    return uniform(0.0, min(cap, base * 2**attempt))


def parse_retry_after(
    retry_after: str | None, retry_after_ms: str | None = None, *, now: float | None = None
) -> float | None:
    """The seconds a server asks a client to wait before retrying, or None when it asks nothing readable.

    ``retry_after_ms`` (OpenAI's ``retry-after-ms`` header) wins when it is a number. Otherwise
    ``retry_after`` (the ``Retry-After`` header, RFC 9110 section 10.2.3) as delta-seconds or as an
    HTTP-date, compared with ``now`` (epoch seconds, default the clock). A negative number or a date
    already past asks for no wait at all: 0.0. Junk, NaN and infinity: None.
    """
    if retry_after_ms is not None and (millis := _seconds(retry_after_ms)) is not None:
        return millis / 1000
    if not retry_after:
        return None
    seconds = _seconds(retry_after)
    if seconds is None:
        seconds = _until_date(retry_after, time.time() if now is None else now)
    return seconds


def _seconds(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return max(value, 0.0) if math.isfinite(value) else None


def _until_date(text: str, now: float) -> float | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # the asctime and "-0000" forms parse without a zone; HTTP dates are GMT
        when = when.replace(tzinfo=UTC)
    return max(when.timestamp() - now, 0.0)


def format_duration(seconds: float) -> str:
    """OpenAI's (Go's) duration format at millisecond precision, rounded up: 20ms, 8.64s, 1m0s."""
    millis = max(0, math.ceil(round(seconds * 1000, 6)))
    if millis == 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs = f"{rest / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
