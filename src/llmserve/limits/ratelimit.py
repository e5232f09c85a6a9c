"""RPM, TPM and parallel-request limits that admit exactly the limit, per process or across replicas.

``acquire(subjects, estimated_tokens)`` checks every subject (``key:<id>``, ``model:<group>``, …) in
all three dimensions at once: either every counter is taken (one request, the estimated tokens, one
parallel slot per subject) or none is and ``RateLimited`` is raised with ``retry_after`` and the
``x-ratelimit-*`` headers (see ``leases``). The returned ``Lease`` is settled with the real token
count after the call and released on every path.

Window algorithm: a sliding log over ``window_seconds`` (60). RPM keeps each admitted request's
time; TPM keeps each request's reservation (time, tokens), replaced by the real count on settle.
A request is admitted iff the requests (tokens) logged in the last 60 s plus this one stay within
the limit, so no 60 s interval ever holds more than the limit — exact, which the cheaper schemes are
not: a two-bucket sliding counter weights the previous minute by an estimate and can admit more or
fewer than the limit; a fixed window admits up to twice the limit across a boundary; GCRA (a token
bucket) enforces the rate smoothly and, with a burst of ``rpm``, admits up to ~2×rpm in some 60 s
interval. The log costs memory per request in the window (at most ``rpm`` entries for RPM; one per
request for TPM), which is small at per-key and per-model limits, and it answers Retry-After exactly
(when the oldest entries that must leave do leave).

Library: the ``limits`` package (moving-window strategy) is exact per counter but checks one
counter per call, has no multi-counter atomicity (key *and* model, RPM *and* TPM *and* parallel, all
or nothing), no reservations settled later and no parallel slots; so this is our own code, a Lua
script in Redis.
"""

from __future__ import annotations

from llmserve.config import Settings
from llmserve.limits.leases import Lease, LimitSubject, RateLimiter
from llmserve.limits.memory_limiter import InProcessLimiter
from llmserve.limits.redis_limiter import RedisLimiter

__all__ = ["InProcessLimiter", "Lease", "LimitSubject", "RateLimiter", "RedisLimiter", "build_limiter"]

DEFAULT_PREFIX = "llmserve"


def build_limiter(settings: Settings, *, prefix: str = DEFAULT_PREFIX) -> RateLimiter:
    """Shared through Redis when ``limits.redis_url`` (or the top-level ``redis_url``) is set."""
    url = settings.limits.redis_url or settings.redis_url
    if url:
        return RedisLimiter(url, prefix)
    return InProcessLimiter()
