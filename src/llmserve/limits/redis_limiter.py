"""The rate limiter shared by every replica: the same exact sliding windows, kept in Redis.

``acquire`` is one EVALSHA of ``redis_scripts.ACQUIRE`` covering every subject and dimension, so
the check-and-take is atomic across replicas and costs one round trip. ``settle`` and ``release``
cost one more each (``finish`` one for both), and none when no subject limits tokens (parallel
requests).

Parallel slots: each is a member of the subject's ``slots`` sorted set scored by its expiry, ``now +
lease_ttl_seconds`` (default 10 minutes, longer than any call's timeout). ``release`` removes it; a
replica that dies before releasing leaks the slot only until that expiry, and every acquire drops
expired slots before counting. A call running longer than the TTL loses its slot early (the limit
is then briefly loose, never stuck).

Redis unavailable: ``acquire`` fails closed with ``Overloaded`` (503, retry after 1 s) rather than
letting traffic through unlimited; ``settle`` and ``release`` log and give up (keys expire anyway).
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from llmserve.errors import Overloaded
from llmserve.limits import redis_scripts
from llmserve.limits.leases import Lease, LimitSubject, SubjectCheck, admit_or_raise, check_subjects
from llmserve.limits.memory_limiter import DEFAULT_LEASE_TTL_S, DEFAULT_WINDOW_S
from llmserve.storage.redis import connect_limits_redis

if TYPE_CHECKING:
    from redis.asyncio import Redis

logger = logging.getLogger(__name__)

_US = 1_000_000
_FIELDS_PER_SUBJECT = 6


class RedisLimiter:
    """Keys live under ``<prefix>:{limits}:<subject name>:…``; ``client`` may be shared (not closed)."""

    def __init__(
        self,
        url: str,
        prefix: str = "llmserve",
        *,
        client: Redis | None = None,
        window_seconds: float = DEFAULT_WINDOW_S,
        lease_ttl_seconds: float = DEFAULT_LEASE_TTL_S,
    ) -> None:
        if window_seconds <= 0 or lease_ttl_seconds <= 0:
            raise ValueError("window_seconds and lease_ttl_seconds must be positive")
        self.prefix = prefix
        self.window = window_seconds
        self.lease_ttl = lease_ttl_seconds
        self.client = client if client is not None else connect_limits_redis(url)
        self._owns_client = client is None
        self._acquire = self.client.register_script(redis_scripts.ACQUIRE)
        self._update = self.client.register_script(redis_scripts.UPDATE_LEASE)

    def keys(self, subject_name: str) -> tuple[str, str, str, str]:
        """(requests, tokens, amounts, slots) of one subject."""
        # One hash tag for every limiter key: a multi-subject script must stay in one cluster slot.
        base = f"{self.prefix}:{{limits}}:{subject_name}"
        return f"{base}:requests", f"{base}:tokens", f"{base}:amounts", f"{base}:slots"

    async def acquire(self, subjects: Sequence[LimitSubject], estimated_tokens: int) -> Lease:
        check_subjects(subjects)
        estimate = max(0, estimated_tokens)
        lease_id = uuid.uuid4().hex
        keys: list[str] = []
        args: list[Any] = [_micros(self.window), _micros(self.lease_ttl), lease_id, estimate]
        for subject in subjects:
            keys.extend(self.keys(subject.name))
            rule = subject.rule
            args.extend([rule.rpm or 0, rule.tpm or 0, rule.max_parallel or 0])
        try:
            reply = await self._acquire(keys=keys, args=args)
        except Exception as exc:
            if not _is_redis_error(exc):
                raise
            logger.warning("rate limiter: Redis unavailable, refusing the request: %s", exc)
            raise Overloaded("The rate limiter is unavailable; retry shortly") from exc
        values = [int(v) for v in reply]
        checks = [
            _check(subject, values[1 + i * _FIELDS_PER_SUBJECT : 1 + (i + 1) * _FIELDS_PER_SUBJECT])
            for i, subject in enumerate(subjects)
        ]
        return admit_or_raise(checks, lease_id, estimate, self)

    async def update_lease(self, lease: Lease, actual_tokens: int | None, release: bool) -> None:
        keys: list[str] = []
        if actual_tokens is not None:
            for subject in lease.subjects:
                if subject.rule.tpm is not None:
                    keys.extend(self.keys(subject.name)[1:3])
        pairs = len(keys) // 2
        if release:
            keys.extend(self.keys(s.name)[3] for s in lease.subjects if s.rule.max_parallel is not None)
        call = self._update(keys=keys, args=[lease.id, actual_tokens or 0, pairs])
        try:
            # Shielded: a release awaited while the request is being cancelled must still reach Redis.
            await asyncio.shield(call)
        except Exception as exc:
            if not _is_redis_error(exc):
                raise
            logger.warning(
                "rate limiter: could not update lease %s (its keys expire anyway): %s", lease.id, exc
            )

    async def close(self) -> None:
        if self._owns_client:
            await self.client.aclose()


def _micros(seconds: float) -> int:
    return max(1, math.ceil(seconds * _US))


def _check(subject: LimitSubject, fields: list[int]) -> SubjectCheck:
    blocked, requests_used, requests_reset, tokens_used, tokens_reset, retry = fields
    return SubjectCheck(
        subject=subject,
        blocked=blocked,
        requests_used=requests_used,
        requests_reset=requests_reset / _US,
        tokens_used=tokens_used,
        tokens_reset=tokens_reset / _US,
        retry_after=retry / _US,
    )


def _is_redis_error(exc: BaseException) -> bool:
    from redis.exceptions import RedisError

    return isinstance(exc, (RedisError, OSError, TimeoutError))
