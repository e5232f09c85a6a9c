"""The rate limiter of one process: exact sliding windows kept in memory.

Each subject keeps a log of its requests' admission times (RPM), a log of its token reservations
(TPM: admission time and tokens, with their running sum) and its open parallel slots (lease id →
expiry). A request is admitted when, in the last ``window_seconds``, every subject has fewer than
``rpm`` requests, fewer than ``tpm - estimate`` tokens and fewer than ``max_parallel`` open slots;
then every counter is taken at once. ``acquire`` never awaits between the check and the update, so
on one event loop the check-and-take is atomic without a lock.

Memory: a subject's logs hold at most the requests admitted in the last window; subjects left empty
are dropped by a sweep that runs at most once per window.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from llmserve.limits.leases import (
    BLOCKED_PARALLEL,
    BLOCKED_REQUESTS,
    BLOCKED_TOKENS,
    TOO_LARGE,
    Lease,
    LimitSubject,
    SubjectCheck,
    admit_or_raise,
    check_subjects,
)

DEFAULT_WINDOW_S = 60.0
DEFAULT_LEASE_TTL_S = 600.0


@dataclass
class _TokenEntry:
    admitted_at: float
    tokens: int


@dataclass
class _SubjectState:
    requests: deque[float] = field(default_factory=deque)  # admission times, oldest first
    tokens: OrderedDict[str, _TokenEntry] = field(default_factory=OrderedDict)  # lease id → entry
    token_total: int = 0
    slots: dict[str, float] = field(default_factory=dict)  # lease id → expiry; insertion = expiry order

    def prune(self, now: float, window: float) -> None:
        cutoff = now - window
        while self.requests and self.requests[0] <= cutoff:
            self.requests.popleft()
        while self.tokens:
            lease_id, entry = next(iter(self.tokens.items()))
            if entry.admitted_at > cutoff:
                break
            del self.tokens[lease_id]
            self.token_total -= entry.tokens
        while self.slots:
            lease_id, expiry = next(iter(self.slots.items()))
            if expiry > now:
                break
            del self.slots[lease_id]

    @property
    def empty(self) -> bool:
        return not (self.requests or self.tokens or self.slots)


class InProcessLimiter:
    """Exact RPM/TPM/parallel limits for one process; ``clock`` is injectable for tests."""

    def __init__(
        self,
        *,
        window_seconds: float = DEFAULT_WINDOW_S,
        lease_ttl_seconds: float = DEFAULT_LEASE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if window_seconds <= 0 or lease_ttl_seconds <= 0:
            raise ValueError("window_seconds and lease_ttl_seconds must be positive")
        self.window = window_seconds
        self.lease_ttl = lease_ttl_seconds
        self._clock = clock
        self._subjects: dict[str, _SubjectState] = {}
        self._ids = itertools.count()
        self._next_sweep = clock() + window_seconds

    async def acquire(self, subjects: Sequence[LimitSubject], estimated_tokens: int) -> Lease:
        check_subjects(subjects)
        estimate = max(0, estimated_tokens)
        now = self._clock()
        self._sweep(now)
        states = [self._subjects.setdefault(s.name, _SubjectState()) for s in subjects]
        for state in states:
            state.prune(now, self.window)
        blocked = [self._blocked(s, state, estimate, now) for s, state in zip(subjects, states, strict=True)]
        lease_id = f"lease-{next(self._ids)}"
        if not any(bits for bits, _ in blocked):
            for subject, state in zip(subjects, states, strict=True):
                self._take(subject, state, lease_id, estimate, now)
        checks = [
            self._report(subject, state, bits, retry, now)
            for subject, state, (bits, retry) in zip(subjects, states, blocked, strict=True)
        ]
        return admit_or_raise(checks, lease_id, estimate, self)

    async def update_lease(self, lease: Lease, actual_tokens: int | None, release: bool) -> None:
        for subject in lease.subjects:
            state = self._subjects.get(subject.name)
            if state is None:
                continue
            if release:
                state.slots.pop(lease.id, None)
            entry = state.tokens.get(lease.id) if actual_tokens is not None else None
            if actual_tokens is not None and entry is not None:  # None: already out of the window
                state.token_total += actual_tokens - entry.tokens
                entry.tokens = actual_tokens

    async def close(self) -> None:
        self._subjects.clear()

    def _blocked(
        self, subject: LimitSubject, state: _SubjectState, estimate: int, now: float
    ) -> tuple[int, float]:
        """(BLOCKED_* bits, seconds until the blocking windows allow the request)."""
        rule = subject.rule
        bits, retry = 0, 0.0
        if rule.rpm is not None and len(state.requests) >= rule.rpm:
            bits |= BLOCKED_REQUESTS
            # The request fits once all but rpm - 1 of the logged requests have left the window.
            retry = state.requests[len(state.requests) - rule.rpm] + self.window - now
        if rule.tpm is not None:
            if estimate > rule.tpm:
                bits |= TOO_LARGE
            elif state.token_total + estimate > rule.tpm:
                bits |= BLOCKED_TOKENS
                retry = max(retry, self._tokens_free_in(state, state.token_total + estimate - rule.tpm, now))
        if rule.max_parallel is not None and len(state.slots) >= rule.max_parallel:
            bits |= BLOCKED_PARALLEL
        return bits, retry

    def _tokens_free_in(self, state: _SubjectState, needed: int, now: float) -> float:
        freed = 0
        for entry in state.tokens.values():
            freed += entry.tokens
            if freed >= needed:
                return entry.admitted_at + self.window - now
        return self.window  # unreachable while token_total matches the entries

    def _take(
        self, subject: LimitSubject, state: _SubjectState, lease_id: str, estimate: int, now: float
    ) -> None:
        rule = subject.rule
        if rule.rpm is not None:
            state.requests.append(now)
        if rule.tpm is not None:
            state.tokens[lease_id] = _TokenEntry(now, estimate)
            state.token_total += estimate
        if rule.max_parallel is not None:
            state.slots[lease_id] = now + self.lease_ttl

    def _report(
        self, subject: LimitSubject, state: _SubjectState, bits: int, retry: float, now: float
    ) -> SubjectCheck:
        requests_reset = state.requests[0] + self.window - now if state.requests else 0.0
        tokens_reset = 0.0
        if state.tokens:
            tokens_reset = next(iter(state.tokens.values())).admitted_at + self.window - now
        return SubjectCheck(
            subject=subject,
            blocked=bits,
            requests_used=len(state.requests),
            requests_reset=requests_reset,
            tokens_used=state.token_total,
            tokens_reset=tokens_reset,
            retry_after=retry,
        )

    def _sweep(self, now: float) -> None:
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.window
        for name, state in list(self._subjects.items()):
            state.prune(now, self.window)
            if state.empty:
                del self._subjects[name]
