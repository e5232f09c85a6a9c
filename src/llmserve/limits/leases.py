"""What both rate limiters share: subjects, the lease a request holds, the check's verdict, headers.

A backend (in process or Redis) checks every subject of a request and reports one ``SubjectCheck``
per subject; ``admit_or_raise`` turns those into a ``Lease`` or a ``RateLimited`` with the
``x-ratelimit-*`` headers of the tightest subject. The backend alone decides; this module only
formats, so both backends answer with the same numbers in the same shape.

Header meanings (values are those of the subject with the least left in that dimension):

- ``x-ratelimit-limit-requests`` / ``-tokens``: the RPM / TPM limit.
- ``x-ratelimit-remaining-requests`` / ``-tokens``: what is left in the sliding window, after this
  request when it was admitted, before it when it was refused (nothing was taken then).
- ``x-ratelimit-reset-requests`` / ``-tokens``: in OpenAI's duration format (``"1m0s"``, ``"8.64s"``,
  ``"20ms"``), the time until the oldest request (token reservation) in the window leaves it, i.e.
  until ``remaining`` next grows. A sliding window never resets all at once, so that moment, not a
  fixed window boundary, is what a client can wait for.
- ``x-ratelimit-limit`` / ``-remaining`` / ``-reset``: the same for requests (for tokens when no
  subject limits requests), the reset in whole seconds, rounded up (IETF RateLimit draft style).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from llmserve.config import LimitRule
from llmserve.errors import RateLimited
from llmserve.retry_timing import format_duration

# Why a subject refused a request: a bit per dimension (and one for a request that can never fit).
BLOCKED_REQUESTS = 1
BLOCKED_TOKENS = 2
BLOCKED_PARALLEL = 4
TOO_LARGE = 8

# A full parallel limit frees when some call ends, which nobody can predict: suggest a short wait.
PARALLEL_RETRY_AFTER_S = 1.0


@dataclass(frozen=True)
class LimitSubject:
    """One counter set: ``name`` is e.g. ``key:<id>`` or ``model:<group>``; ``rule`` its limits."""

    name: str
    rule: LimitRule


@dataclass(frozen=True)
class SubjectCheck:
    """One subject's state as a backend saw it while admitting (or refusing) a request."""

    subject: LimitSubject
    blocked: int  # BLOCKED_* bits; 0 when this subject allows the request
    requests_used: int  # in the window (after the request when admitted)
    requests_reset: float  # seconds until the oldest request leaves the window (0: none in it)
    tokens_used: int
    tokens_reset: float
    retry_after: float  # seconds until this subject's blocking windows allow the request; 0: not blocked


class LeaseBackend(Protocol):
    async def update_lease(self, lease: Lease, actual_tokens: int | None, release: bool) -> None:
        """Replace the TPM reservations by ``actual_tokens`` (unless None); free the slots if ``release``."""
        ...


class Lease:
    """What an admitted request holds: its TPM reservations and parallel slots.

    ``settle`` replaces the TPM reservation by the real count (once; later calls are ignored);
    ``release`` frees the parallel slots (idempotent). Call ``release`` on every path, failure and
    cancellation included; a slot that is never released still expires after the limiter's lease TTL.
    ``finish`` does both in one step (one Redis round trip instead of two).
    """

    def __init__(
        self,
        lease_id: str,
        subjects: Sequence[LimitSubject],
        estimated_tokens: int,
        headers: dict[str, str],
        backend: LeaseBackend,
    ) -> None:
        self.id = lease_id
        self.subjects = tuple(subjects)
        self.estimated_tokens = estimated_tokens
        self.headers = headers
        self._backend = backend
        self._settled = not any(s.rule.tpm is not None for s in self.subjects)
        self._released = not any(s.rule.max_parallel is not None for s in self.subjects)

    @property
    def released(self) -> bool:
        return self._released

    async def settle(self, actual_tokens: int) -> None:
        await self._update(actual_tokens, release=False)

    async def release(self) -> None:
        await self._update(None, release=True)

    async def finish(self, actual_tokens: int | None) -> None:
        """``settle(actual_tokens)`` (skipped when None: the call failed) and ``release()`` at once."""
        await self._update(actual_tokens, release=True)

    async def _update(self, actual_tokens: int | None, *, release: bool) -> None:
        tokens = None if actual_tokens is None or self._settled else max(0, actual_tokens)
        release = release and not self._released
        if tokens is None and not release:
            return
        self._settled = self._settled or tokens is not None
        self._released = self._released or release
        await self._backend.update_lease(self, tokens, release)


class RateLimiter(Protocol):
    """Admits a request against every subject's RPM, TPM and parallel limits at once, or not at all."""

    async def acquire(self, subjects: Sequence[LimitSubject], estimated_tokens: int) -> Lease: ...

    async def close(self) -> None: ...


def check_subjects(subjects: Sequence[LimitSubject]) -> None:
    names = [s.name for s in subjects]
    if len(set(names)) != len(names):
        raise ValueError(f"limit subjects must be distinct, got {names}")


def admit_or_raise(
    checks: Sequence[SubjectCheck],
    lease_id: str,
    estimated_tokens: int,
    backend: LeaseBackend,
) -> Lease:
    """The lease when no subject blocked (the backend has then taken every counter), else raise."""
    headers = rate_headers(checks)
    blocking = [c for c in checks if c.blocked]
    if not blocking:
        return Lease(lease_id, [c.subject for c in checks], estimated_tokens, headers, backend)
    too_large = next((c for c in blocking if c.blocked & TOO_LARGE), None)
    if too_large is not None:
        error = RateLimited(
            f"Request too large for {too_large.subject.name}: it may use {estimated_tokens} tokens, "
            f"more than the limit of {too_large.subject.rule.tpm} tokens per minute",
        )
    else:
        retry_after = max(_retry_after(c) for c in blocking)
        what = "; ".join(_describe(c) for c in blocking)
        error = RateLimited(
            f"Rate limit reached: {what}. Retry after {retry_after:.1f} s.", retry_after=retry_after
        )
    error.headers = headers
    raise error


def _retry_after(check: SubjectCheck) -> float:
    wait = check.retry_after
    if check.blocked & BLOCKED_PARALLEL:
        wait = max(wait, PARALLEL_RETRY_AFTER_S)
    # Never 0: the window frees at that instant, so "now" would race it.
    return max(wait, 0.001)


def _describe(check: SubjectCheck) -> str:
    rule = check.subject.rule
    parts = []
    if check.blocked & BLOCKED_REQUESTS:
        parts.append(f"{rule.rpm} requests per minute")
    if check.blocked & BLOCKED_TOKENS:
        parts.append(f"{rule.tpm} tokens per minute")
    if check.blocked & BLOCKED_PARALLEL:
        parts.append(f"{rule.max_parallel} requests in parallel")
    return f"{check.subject.name} allows {' and '.join(parts)}"


def rate_headers(checks: Sequence[SubjectCheck]) -> dict[str, str]:
    headers: dict[str, str] = {}
    simple: tuple[int, int, float] | None = None
    for dimension in ("requests", "tokens"):
        tightest = _tightest(checks, dimension)
        if tightest is None:
            continue
        limit, remaining, reset = tightest
        headers[f"x-ratelimit-limit-{dimension}"] = str(limit)
        headers[f"x-ratelimit-remaining-{dimension}"] = str(remaining)
        headers[f"x-ratelimit-reset-{dimension}"] = format_duration(reset)
        simple = simple or tightest
    if simple is not None:
        headers["x-ratelimit-limit"] = str(simple[0])
        headers["x-ratelimit-remaining"] = str(simple[1])
        headers["x-ratelimit-reset"] = str(math.ceil(simple[2]))
    return headers


def _tightest(checks: Sequence[SubjectCheck], dimension: str) -> tuple[int, int, float] | None:
    """(limit, remaining, reset) of the subject with the least left; ties: the lower limit."""
    candidates = []
    for check in checks:
        if dimension == "requests":
            limit, used, reset = check.subject.rule.rpm, check.requests_used, check.requests_reset
        else:
            limit, used, reset = check.subject.rule.tpm, check.tokens_used, check.tokens_reset
        if limit is not None:
            candidates.append((max(0, limit - used), limit, reset))
    if not candidates:
        return None
    remaining, limit, reset = min(candidates)
    return limit, remaining, reset
