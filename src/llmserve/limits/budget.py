"""Spend budgets per key: reserve a request's estimated cost before the call, settle the real cost after.

``reserve`` refuses (``BudgetExceeded``) when the period's spend + the costs reserved by requests in
flight + this request's estimate would pass ``max_budget_usd``; the check and the reservation are
one atomic step (an asyncio lock per key in process; a Lua script in Redis, shared by replicas). So
concurrent requests cannot push the reserved total past the budget; spend can pass it only by what
the calls cost beyond their estimates (at most one request's overshoot when estimates are upper
bounds, as the admission's are).

The period's spend lives in a counter per key and period (daily: from UTC midnight; monthly: from
the first of the month, UTC; total: since the epoch). The first reserve of a period seeds it from the
ledger through ``spent(key, period_start)`` (in Redis with ``SET NX``, so one replica's seed wins);
every settle adds the actual cost, so the counter follows the ledger without querying it again.

Known tolerances: a request in flight across a period boundary is not counted against the new
period (its cost lands in the ledger, which seeds the next counter); costs settled in the last
moments before a counter is seeded may still be in the usage writer's buffer and missed by the seed.
The period boundary is computed from each replica's clock.
"""

from __future__ import annotations

import asyncio
import calendar
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING, Protocol

from llmserve.config import Settings
from llmserve.errors import BudgetExceeded
from llmserve.limits.budget_stores import MemoryBudgetStore, RedisBudgetStore, Seed
from llmserve.principal import BudgetPeriod, Principal

if TYPE_CHECKING:
    from redis.asyncio import Redis

logger = logging.getLogger(__name__)

SpentLookup = Callable[[str, datetime], Awaitable[Decimal]]
"""The ledger: a key's spend (USD) since a period start."""

UNITS_PER_USD = 100_000_000  # counters hold integer units of 1e-8 USD: exact, and Lua-safe to $90M
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
DEFAULT_RESERVATION_TTL_S = 600.0
COUNTER_GRACE = timedelta(hours=1)
TOTAL_COUNTER_TTL = timedelta(days=30)


def utc_now() -> datetime:
    return datetime.now(UTC)


def period_start(period: BudgetPeriod, now: datetime) -> datetime:
    now = now.astimezone(UTC)
    if period == "daily":
        return now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "monthly":
        return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return EPOCH


def next_period_start(period: BudgetPeriod, now: datetime) -> datetime | None:
    """When the period after the one holding ``now`` begins; None for ``total``, which never ends."""
    start = period_start(period, now)
    if period == "daily":
        return start + timedelta(days=1)
    if period == "monthly":
        days = calendar.monthrange(start.year, start.month)[1]
        return start + timedelta(days=days)
    return None


def to_units(usd: Decimal, rounding: str = ROUND_CEILING) -> int:
    return int((usd * UNITS_PER_USD).to_integral_value(rounding=rounding))


def from_units(units: int) -> Decimal:
    return Decimal(units) / UNITS_PER_USD


class BudgetStore(Protocol):
    """Atomic check-and-reserve on one key's counter for one period; ``seed`` fills a new counter."""

    async def reserve(
        self, key: str, period: str, reservation_id: str, amount: int, limit: int, ttl_ms: int, seed: Seed
    ) -> tuple[bool, int, int]:
        """(reserved, spent units, held units: in flight, this reservation included when reserved)."""
        ...

    async def settle(self, key: str, period: str, reservation_id: str, actual: int) -> None: ...

    async def close(self) -> None: ...


class BudgetReservation:
    """A reserved estimate: ``settle(actual_cost)`` after the call, or ``release()`` when it failed.

    Whichever comes first counts; later calls do nothing.
    """

    def __init__(
        self, store: BudgetStore | None, key: str, period: str, reservation_id: str, amount: Decimal
    ) -> None:
        self._store = store
        self.key = key
        self.period = period
        self.id = reservation_id
        self.amount = amount
        self._done = store is None

    @property
    def done(self) -> bool:
        return self._done

    async def settle(self, actual_cost: Decimal) -> None:
        await self._finish(to_units(max(actual_cost, Decimal(0))))

    async def release(self) -> None:
        await self._finish(0)

    async def _finish(self, actual: int) -> None:
        if self._done or self._store is None:
            return
        self._done = True
        # Shielded: a release awaited while the request is being cancelled must still reach the store.
        await asyncio.shield(self._store.settle(self.key, self.period, self.id, actual))


class BudgetGuard:
    """Reserves against each key's ``max_budget_usd``; shared through Redis when given a URL (or client)."""

    def __init__(
        self,
        spent: SpentLookup,
        redis_url: str | None = None,
        prefix: str = "llmserve",
        *,
        client: Redis | None = None,
        clock: Callable[[], datetime] = utc_now,
        reservation_ttl_seconds: float = DEFAULT_RESERVATION_TTL_S,
    ) -> None:
        self._spent = spent
        self._clock = clock
        self.store: BudgetStore
        if redis_url is not None or client is not None:
            self.store = RedisBudgetStore(
                redis_url, prefix, client=client, reservation_ttl_seconds=reservation_ttl_seconds
            )
        else:
            self.store = MemoryBudgetStore()

    async def reserve(self, principal: Principal, estimated_cost: Decimal) -> BudgetReservation:
        key = principal.key_id or principal.tenant
        if principal.max_budget_usd is None:
            return BudgetReservation(None, key, "", "", Decimal(0))
        now = self._clock()
        start = period_start(principal.budget_period, now)
        period = f"{principal.budget_period}:{int(start.timestamp())}"
        amount = max(estimated_cost, Decimal(0))
        reservation_id = uuid.uuid4().hex

        async def seed() -> int:
            spent = await self._spent(key, start)
            logger.debug("budget: seeded %s %s from the ledger: %s USD", key, period, spent)
            return to_units(spent)

        reserved, spent_units, held_units = await self.store.reserve(
            key,
            period,
            reservation_id,
            to_units(amount),
            to_units(principal.max_budget_usd, ROUND_FLOOR),
            _counter_ttl_ms(principal.budget_period, now),
            seed,
        )
        if not reserved:
            raise _exceeded(principal, now, amount, spent_units, held_units)
        return BudgetReservation(self.store, key, period, reservation_id, amount)

    async def close(self) -> None:
        await self.store.close()


def build_budget_guard(settings: Settings, spent: SpentLookup, *, prefix: str = "llmserve") -> BudgetGuard:
    """Shared through Redis when ``limits.redis_url`` (or the top-level ``redis_url``) is set."""
    return BudgetGuard(spent, settings.limits.redis_url or settings.redis_url, prefix)


def _exceeded(principal: Principal, now: datetime, amount: Decimal, spent: int, held: int) -> BudgetExceeded:
    assert principal.max_budget_usd is not None
    period = {"daily": "today", "monthly": "this month", "total": "in total"}[principal.budget_period]
    message = (
        f"Budget exceeded: this key may spend ${principal.max_budget_usd} {period}; "
        f"${_usd(from_units(spent))} is spent, ${_usd(from_units(held))} is reserved by requests in flight, "
        f"and this request may cost up to ${_usd(amount)}"
    )
    upcoming = next_period_start(principal.budget_period, now)
    retry_after = None if upcoming is None else max(1.0, (upcoming - now).total_seconds())
    return BudgetExceeded(message, retry_after=retry_after)


def _usd(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.000001')).normalize():f}"


def _counter_ttl_ms(period: BudgetPeriod, now: datetime) -> int:
    """A counter outlives its period by an hour (settles of late requests); ``total`` reseeds monthly."""
    upcoming = next_period_start(period, now)
    if upcoming is None:
        return int(TOTAL_COUNTER_TTL.total_seconds() * 1000)
    return int((upcoming - now + COUNTER_GRACE).total_seconds() * 1000)
