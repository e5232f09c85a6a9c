"""Spend budgets: atomic reserve under concurrency, settle and release, ledger seeding, periods."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from llmserve.cache.stores import connect_redis, delete_matching, glob_escape
from llmserve.config import LimitSettings, Settings
from llmserve.errors import BudgetExceeded, Overloaded
from llmserve.limits.budget import (
    BudgetGuard,
    BudgetReservation,
    build_budget_guard,
    from_units,
    next_period_start,
    period_start,
)
from llmserve.limits.budget_stores import MemoryBudgetStore, RedisBudgetStore
from llmserve.principal import BudgetPeriod, Principal
from tests.unit.limits.conftest import FakeCalendar

NOW = datetime(2026, 11, 26, 15, 30, tzinfo=UTC)


class Ledger:
    """The usage ledger as the guard sees it: spend per key since a period start, a little slow."""

    def __init__(self, spent: Decimal = Decimal(0)) -> None:
        self.spent = spent
        self.calls: list[tuple[str, datetime]] = []

    async def __call__(self, key: str, since: datetime) -> Decimal:
        self.calls.append((key, since))
        await asyncio.sleep(0.01)  # a database round trip: concurrent first requests overlap it
        return self.spent


def principal(budget: str | None = "1.00", period: BudgetPeriod = "monthly") -> Principal:
    return Principal(
        key_id="k1", max_budget_usd=None if budget is None else Decimal(budget), budget_period=period
    )


MakeGuard = Callable[[Ledger], BudgetGuard]


@pytest.fixture(params=["memory", "redis"])
async def make_guard(request: pytest.FixtureRequest, calendar: FakeCalendar) -> AsyncIterator[MakeGuard]:
    """Guards of one backend; Redis ones have their own clients, like replicas."""
    made: list[BudgetGuard] = []
    url: str | None = None
    prefix = f"llmserve-test-{uuid.uuid4().hex[:12]}"
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")

    def make(ledger: Ledger) -> BudgetGuard:
        made.append(BudgetGuard(ledger, url, prefix, clock=calendar))
        return made[-1]

    yield make
    for guard in made:
        await guard.close()
    if url is not None:
        client = connect_redis(url)
        try:
            await delete_matching(client, f"{glob_escape(prefix)}*")
        finally:
            await client.aclose()


@pytest.fixture
def calendar() -> FakeCalendar:
    return FakeCalendar(NOW)


async def try_reserve(guard: BudgetGuard, who: Principal, cost: str) -> BudgetReservation | None:
    try:
        return await guard.reserve(who, Decimal(cost))
    except BudgetExceeded:
        return None


async def test_50_concurrent_requests_cannot_overspend_a_budget(make_guard: MakeGuard) -> None:
    ledger = Ledger()
    guard = make_guard(ledger)
    who = principal("1.00")

    reservations = await asyncio.gather(*(try_reserve(guard, who, "0.10") for _ in range(50)))
    admitted = [r for r in reservations if r is not None]
    for reservation in admitted:
        await reservation.settle(Decimal("0.10"))

    assert len(admitted) == 10
    assert len(ledger.calls) == 1  # one seed for the period, however many requests raced for it
    with pytest.raises(BudgetExceeded):
        await guard.reserve(who, Decimal("0.01"))


async def test_replicas_share_one_budget(redis_url: str, redis_prefix: str) -> None:
    ledger = Ledger(Decimal("0.50"))
    replicas = [BudgetGuard(ledger, redis_url, redis_prefix, clock=FakeCalendar(NOW)) for _ in range(3)]
    who = principal("1.00")
    try:
        reservations = await asyncio.gather(*(try_reserve(replicas[i % 3], who, "0.10") for i in range(60)))
        admitted = [r for r in reservations if r is not None]
        for reservation in admitted:
            await reservation.settle(Decimal("0.12"))  # each call cost a little more than estimated
        store = replicas[0].store
        assert isinstance(store, RedisBudgetStore)
        counter = await store.client.get(store.keys("k1", admitted[0].period)[0])
    finally:
        for replica in replicas:
            await replica.close()

    assert len(admitted) == 5  # $0.50 left, $0.10 each
    assert counter is not None
    assert from_units(int(counter)) == Decimal("1.10")  # the ledger's 0.50 + 5 x 0.12, seeded once
    assert 1 <= len(ledger.calls) <= 3  # at most one ledger query per replica


async def test_the_refusal_says_what_is_spent_and_when_the_period_restarts(make_guard: MakeGuard) -> None:
    guard = make_guard(Ledger(Decimal("0.95")))

    with pytest.raises(BudgetExceeded) as refused:
        await guard.reserve(principal("1.00", "daily"), Decimal("0.10"))

    error = refused.value
    assert error.status_code == 429 and error.code == "budget_exceeded"
    assert "$1.00 today" in error.message and "$0.95 is spent" in error.message
    assert error.retry_after == pytest.approx(8.5 * 3600)  # 15:30 → midnight UTC


async def test_a_total_budget_has_no_retry_after(make_guard: MakeGuard) -> None:
    guard = make_guard(Ledger(Decimal("5")))

    with pytest.raises(BudgetExceeded) as refused:
        await guard.reserve(principal("5.00", "total"), Decimal("0.01"))

    assert refused.value.retry_after is None


async def test_settle_and_release_give_back_what_was_not_spent(make_guard: MakeGuard) -> None:
    guard = make_guard(Ledger())
    who = principal("1.00")
    first = await guard.reserve(who, Decimal("0.60"))
    assert await try_reserve(guard, who, "0.60") is None

    await first.settle(Decimal("0.20"))
    second = await guard.reserve(who, Decimal("0.60"))  # 0.20 spent + 0.60 held
    assert await try_reserve(guard, who, "0.30") is None

    await second.release()  # the call failed: it cost nothing
    await second.settle(Decimal("0.60"))  # ignored: the reservation is finished
    third = await guard.reserve(who, Decimal("0.80"))
    assert third is not None


async def test_a_key_without_a_budget_is_not_counted(make_guard: MakeGuard) -> None:
    ledger = Ledger()
    guard = make_guard(ledger)

    reservation = await guard.reserve(principal(None), Decimal("1000"))
    await reservation.settle(Decimal("1000"))

    assert reservation.done
    assert ledger.calls == []


async def test_a_new_period_starts_from_the_ledger_again(
    make_guard: MakeGuard, calendar: FakeCalendar
) -> None:
    ledger = Ledger()
    guard = make_guard(ledger)
    who = principal("1.00", "daily")
    spend = await guard.reserve(who, Decimal("1.00"))
    await spend.settle(Decimal("1.00"))
    assert await try_reserve(guard, who, "0.01") is None

    calendar.now = datetime(2026, 11, 27, 0, 0, 1, tzinfo=UTC)
    reservation = await guard.reserve(who, Decimal("0.50"))

    assert reservation is not None
    assert ledger.calls == [
        ("k1", datetime(2026, 11, 26, tzinfo=UTC)),
        ("k1", datetime(2026, 11, 27, tzinfo=UTC)),
    ]


async def test_a_settle_after_the_period_ended_does_not_count_against_the_new_one(
    make_guard: MakeGuard, calendar: FakeCalendar
) -> None:
    guard = make_guard(Ledger())
    who = principal("1.00", "daily")
    late = await guard.reserve(who, Decimal("0.90"))

    calendar.now = datetime(2026, 11, 27, 0, 0, 1, tzinfo=UTC)
    await guard.reserve(who, Decimal("0.10"))
    await late.settle(Decimal("0.90"))  # old period's counter; the ledger carries it from here on

    assert await try_reserve(guard, who, "0.90") is not None


async def test_redis_reservations_of_a_dead_replica_expire(redis_url: str, redis_prefix: str) -> None:
    guard = BudgetGuard(
        Ledger(), redis_url, redis_prefix, clock=FakeCalendar(NOW), reservation_ttl_seconds=0.2
    )
    who = principal("1.00")
    try:
        await guard.reserve(who, Decimal("1.00"))  # never settled nor released
        assert await try_reserve(guard, who, "0.10") is None
        await asyncio.sleep(0.25)
        assert await try_reserve(guard, who, "0.10") is not None
    finally:
        await guard.close()


async def test_redis_counters_expire_after_their_period(redis_url: str, redis_prefix: str) -> None:
    guard = BudgetGuard(Ledger(), redis_url, redis_prefix, clock=FakeCalendar(NOW))
    store = guard.store
    assert isinstance(store, RedisBudgetStore)
    try:
        reservation = await guard.reserve(principal("1.00", "daily"), Decimal("0.10"))
        spent, held, held_until = [await store.client.pttl(k) for k in store.keys("k1", reservation.period)]
        await reservation.settle(Decimal("0.10"))
    finally:
        await guard.close()

    assert spent / 1000 == pytest.approx(8.5 * 3600 + 3600, abs=5)  # to midnight, plus an hour
    assert 0 < held <= 600_000 and 0 < held_until <= 600_000


async def test_an_unreachable_redis_refuses_with_503() -> None:
    guard = BudgetGuard(Ledger(), "redis://127.0.0.1:1/0")
    try:
        with pytest.raises(Overloaded, match="budget service is unavailable"):
            await guard.reserve(principal("1.00"), Decimal("0.10"))
    finally:
        await guard.close()


@pytest.mark.parametrize(
    ("period", "now", "start", "upcoming"),
    [
        (
            "daily",
            datetime(2026, 11, 26, 23, 59, 59, tzinfo=UTC),
            datetime(2026, 11, 26, tzinfo=UTC),
            datetime(2026, 11, 27, tzinfo=UTC),
        ),
        (
            "monthly",
            datetime(2026, 12, 31, 12, tzinfo=UTC),
            datetime(2026, 12, 1, tzinfo=UTC),
            datetime(2027, 1, 1, tzinfo=UTC),
        ),
        (
            "monthly",
            datetime(2028, 2, 29, 12, tzinfo=UTC),
            datetime(2028, 2, 1, tzinfo=UTC),
            datetime(2028, 3, 1, tzinfo=UTC),
        ),
        ("total", datetime(2026, 11, 26, tzinfo=UTC), datetime(1970, 1, 1, tzinfo=UTC), None),
    ],
)
def test_periods_start_at_utc_boundaries(
    period: BudgetPeriod, now: datetime, start: datetime, upcoming: datetime | None
) -> None:
    assert period_start(period, now) == start
    assert next_period_start(period, now) == upcoming


def test_build_budget_guard_uses_redis_when_a_url_is_set() -> None:
    assert isinstance(build_budget_guard(Settings(), Ledger()).store, MemoryBudgetStore)
    shared = Settings(limits=LimitSettings(redis_url="redis://127.0.0.1:6379/0"))
    assert isinstance(build_budget_guard(shared, Ledger()).store, RedisBudgetStore)
    assert isinstance(
        build_budget_guard(Settings(redis_url="redis://127.0.0.1:6379/0"), Ledger()).store, RedisBudgetStore
    )
