"""Waiting in tests for something to become true, rather than sleeping and hoping it has.

``await eventually(lambda: ...)`` (async tests) and ``wait_until(lambda: ...)`` (sync tests) check the
condition at once and then every ``interval`` seconds; they return as soon as it holds and fail the test
when it still does not after ``within`` seconds. ``poll`` is the same wait answering True or False, for
callers that fail with their own message, or that assert something does NOT happen within a time:
``assert not poll(lambda: duplicate_arrived(), within=0.3)`` returns (and fails) the moment it does.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

DEFAULT_WITHIN_S = 5.0
DEFAULT_INTERVAL_S = 0.005


def poll(
    predicate: Callable[[], bool],
    *,
    within: float = DEFAULT_WITHIN_S,
    interval: float = DEFAULT_INTERVAL_S,
) -> bool:
    """True as soon as ``predicate()`` is; False if it is still false after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def wait_until(
    predicate: Callable[[], bool],
    *,
    within: float = DEFAULT_WITHIN_S,
    interval: float = DEFAULT_INTERVAL_S,
    message: str = "",
) -> None:
    """Returns once ``predicate()`` is true; fails the test if it is not within ``within`` seconds."""
    if not poll(predicate, within=within, interval=interval):
        raise AssertionError(f"not true within {within:g}s: {message or _describe(predicate)}")


async def eventually(
    predicate: Callable[[], bool | Awaitable[bool]],
    *,
    within: float = DEFAULT_WITHIN_S,
    interval: float = DEFAULT_INTERVAL_S,
    message: str = "",
) -> None:
    """Returns once ``predicate()`` (a plain or an async check) is true, letting the event loop run
    in between; fails the test if it is not within ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        outcome = predicate()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(f"not true within {within:g}s: {message or _describe(predicate)}")
        await asyncio.sleep(interval)


def _describe(predicate: Callable[[], object]) -> str:
    try:
        return inspect.getsource(predicate).strip()
    except (OSError, TypeError):
        return repr(predicate)
