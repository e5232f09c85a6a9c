"""Where budget counters live: in process, or in Redis (shared by replicas, atomic through Lua).

A counter belongs to one key and one period (``period`` is e.g. ``monthly:1764547200``) and holds,
in integer units of 1e-8 USD, the period's spend and the reservations of requests in flight. A new
period starts a new counter, seeded from the ledger by ``seed()``.

In Redis, reservations expire after ``reservation_ttl_seconds`` (10 minutes by default), so a replica
that dies mid-request leaks its reservation only that long; a counter expires shortly after its
period ends (``total``: after 30 days, then the next reserve seeds it from the ledger again).
Redis unavailable: ``reserve`` fails closed with ``Overloaded`` (503); ``settle`` logs and gives up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from llmserve.errors import Overloaded
from llmserve.limits import redis_scripts
from llmserve.storage.redis import connect_limits_redis

if TYPE_CHECKING:
    from redis.asyncio import Redis

logger = logging.getLogger(__name__)

Seed = Callable[[], Awaitable[int]]


@dataclass
class _Account:
    period: str
    spent: int
    held: dict[str, int] = field(default_factory=dict)


class MemoryBudgetStore:
    def __init__(self) -> None:
        self._accounts: dict[str, _Account] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def reserve(
        self, key: str, period: str, reservation_id: str, amount: int, limit: int, ttl_ms: int, seed: Seed
    ) -> tuple[bool, int, int]:
        # The lock covers the seed's ledger query too, so concurrent first requests seed once.
        async with self._locks.setdefault(key, asyncio.Lock()):
            account = self._accounts.get(key)
            if account is None or account.period != period:
                account = _Account(period, await seed())
                self._accounts[key] = account
            held = sum(account.held.values())
            if account.spent + held + amount > limit:
                return False, account.spent, held
            account.held[reservation_id] = amount
            return True, account.spent, held + amount

    async def settle(self, key: str, period: str, reservation_id: str, actual: int) -> None:
        account = self._accounts.get(key)
        if account is None or account.period != period:
            return  # a period that has ended: the ledger has the cost
        account.held.pop(reservation_id, None)
        account.spent += actual

    async def close(self) -> None:
        self._accounts.clear()


class RedisBudgetStore:
    def __init__(
        self,
        url: str | None,
        prefix: str,
        *,
        client: Redis | None = None,
        reservation_ttl_seconds: float = 600.0,
    ) -> None:
        if client is None and url is None:
            raise ValueError("RedisBudgetStore needs a url or a client")
        self.prefix = prefix
        self.reservation_ttl_ms = max(1, int(reservation_ttl_seconds * 1000))
        self.client = client if client is not None else connect_limits_redis(url or "")
        self._owns_client = client is None
        self._reserve = self.client.register_script(redis_scripts.BUDGET_RESERVE)
        self._settle = self.client.register_script(redis_scripts.BUDGET_SETTLE)
        self._seeding: dict[str, asyncio.Lock] = {}

    def keys(self, key: str, period: str) -> list[str]:
        """(spent, held, held_until); the hash tag keeps one key's counters in one cluster slot."""
        base = f"{self.prefix}:{{budget:{key}}}:{period}"
        return [f"{base}:spent", f"{base}:held", f"{base}:held_until"]

    async def reserve(
        self, key: str, period: str, reservation_id: str, amount: int, limit: int, ttl_ms: int, seed: Seed
    ) -> tuple[bool, int, int]:
        keys = self.keys(key, period)
        args: list[str | int] = [reservation_id, amount, limit, self.reservation_ttl_ms]
        try:
            for _ in range(3):
                status, spent, held = (int(v) for v in await self._reserve(keys=keys, args=args))
                if status >= 0:
                    return status == 1, spent, held
                await self._seed(key, keys[0], ttl_ms, seed)
        except Exception as exc:
            if not _is_redis_error(exc):
                raise
            logger.warning("budget: Redis unavailable, refusing the request: %s", exc)
            raise Overloaded("The budget service is unavailable; retry shortly") from exc
        raise Overloaded("The budget counter could not be seeded; retry shortly")

    async def _seed(self, key: str, counter: str, ttl_ms: int, seed: Seed) -> None:
        # One ledger query per replica (lock), one winner across replicas (SET NX).
        async with self._seeding.setdefault(key, asyncio.Lock()):
            if await self.client.exists(counter):
                return
            units = await seed()
            await self.client.set(counter, units, nx=True, px=ttl_ms)

    async def settle(self, key: str, period: str, reservation_id: str, actual: int) -> None:
        try:
            await self._settle(keys=self.keys(key, period), args=[reservation_id, actual])
        except Exception as exc:
            if not _is_redis_error(exc):
                raise
            logger.warning("budget: could not settle reservation %s of %s: %s", reservation_id, key, exc)

    async def close(self) -> None:
        if self._owns_client:
            await self.client.aclose()


def _is_redis_error(exc: BaseException) -> bool:
    from redis.exceptions import RedisError

    return isinstance(exc, (RedisError, OSError, TimeoutError))
