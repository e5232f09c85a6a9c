"""UsageLedger against real SQLite and PostgreSQL: nothing recorded is lost, and costs add up exactly."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from llmserve.config import ModelDeployment, UsageSettings
from llmserve.errors import InvalidRequest
from llmserve.services.pricing import cost_usd
from llmserve.services.usage import UsageLedger, UsageRecord
from llmserve.storage.db import Database
from llmserve.storage.models import UsageLedgerRow

LOGGER = "llmserve.services.usage"
MINI = ModelDeployment(name="mini", provider="openai", model="gpt-4o-mini", api_base="http://127.0.0.1:9/v1")


class FlakyDatabase(Database):
    """The real database behind a switch: while ``down``, sessions fail as with a dropped server."""

    def __init__(self, real: Database) -> None:  # no super().__init__(): it shares the real engine
        self.real = real
        self.down = False
        self.refused = 0

    def session(self, *, readonly: bool = False) -> AsyncSession:
        if self.down:
            self.refused += 1
            raise OperationalError("INSERT INTO usage_ledger", {}, ConnectionRefusedError("server is down"))
        return self.real.session(readonly=readonly)


def call(model: str = "mini", *, prompt_tokens: int = 1234, completion_tokens: int = 567) -> UsageRecord:
    return UsageRecord(
        request_id="req-1",
        model=model,
        deployment="mini-1",
        provider="openai",
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost_usd=cost_usd(MINI, prompt_tokens, completion_tokens),
        latency_ms=42.0,
        api_key="key-a",
        cache_status="miss",
    )


def settings(interval: float = 60.0, batch_size: int = 500, max_pending: int = 10_000) -> UsageSettings:
    return UsageSettings(flush_interval_seconds=interval, batch_size=batch_size, max_pending=max_pending)


async def stored(db: Database) -> int:
    async with db.session(readonly=True) as session:
        return await session.scalar(select(func.count()).select_from(UsageLedgerRow)) or 0


async def eventually(check: Callable[[], object]) -> None:
    for _ in range(1000):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met within 10 s")


@pytest.fixture
async def ledgers() -> AsyncIterator[list[UsageLedger]]:
    """Ledgers a test makes; closed at the end even if the test fails."""
    made: list[UsageLedger] = []
    yield made
    for ledger in made:
        await ledger.close()


def started(
    made: list[UsageLedger], db: Database, usage: UsageSettings, close_timeout_s: float = 10.0
) -> UsageLedger:
    ledger = UsageLedger(db, usage, close_timeout_s=close_timeout_s)
    ledger.start()
    made.append(ledger)
    return ledger


async def test_three_calls_cost_exactly_their_sum(database: Database, ledgers: list[UsageLedger]) -> None:
    ledger = started(ledgers, database, settings())
    for _ in range(3):
        await ledger.record(call())
    # Long interval, no flush: the report itself must include calls answered before it was asked.
    [row] = await ledger.report()
    # 1234 x 0.00015/1k + 567 x 0.0006/1k = 0.0005253 per call, exactly.
    assert row.cost_usd == Decimal("0.0015759")
    assert (row.model, row.requests, row.prompt_tokens, row.completion_tokens) == ("mini", 3, 3702, 1701)
    assert (row.cache_hits, row.errors) == (0, 0)


async def test_burst_under_back_pressure_all_lands(database: Database, ledgers: list[UsageLedger]) -> None:
    ledger = started(ledgers, database, settings(batch_size=500, max_pending=1000))
    peak = 0

    async def client(n: int) -> None:
        nonlocal peak
        for _ in range(n):
            await ledger.record(call(prompt_tokens=3, completion_tokens=1))
            peak = max(peak, ledger.pending)

    await asyncio.gather(*(client(5000) for _ in range(4)))
    # Memory stays bounded: the buffer plus at most one batch in flight and one row per waiter.
    assert peak <= 1000 + 500 + 4
    await ledger.flush()
    assert ledger.pending == 0
    assert await stored(database) == 20_000
    [row] = await ledger.report()
    assert (row.requests, row.prompt_tokens, row.completion_tokens) == (20_000, 60_000, 20_000)
    assert row.cost_usd == 20_000 * cost_usd(MINI, 3, 1)


async def test_rows_are_written_every_interval(database: Database, ledgers: list[UsageLedger]) -> None:
    ledger = started(ledgers, database, settings(interval=0.05))
    for _ in range(3):
        await ledger.record(call())
    await eventually(lambda: ledger.pending == 0)
    assert await stored(database) == 3


async def test_a_full_batch_does_not_wait_for_the_interval(
    database: Database, ledgers: list[UsageLedger]
) -> None:
    ledger = started(ledgers, database, settings(interval=60.0, batch_size=10))
    for _ in range(10):
        await ledger.record(call())
    await eventually(lambda: ledger.pending == 0)
    assert await stored(database) == 10


async def test_close_writes_everything_still_pending(database: Database) -> None:
    ledger = UsageLedger(database, settings(interval=60.0))
    ledger.start()
    for _ in range(7):
        await ledger.record(call())
    await ledger.close()
    assert ledger.pending == 0
    assert await stored(database) == 7


async def test_rows_survive_a_database_outage(
    database: Database, ledgers: list[UsageLedger], caplog: pytest.LogCaptureFixture
) -> None:
    flaky = FlakyDatabase(database)
    ledger = started(ledgers, flaky, settings(interval=0.05))
    flaky.down = True
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for _ in range(5):
            await ledger.record(call())
        await eventually(lambda: flaky.refused >= 2)  # it tried, failed, and tried again
    assert ledger.pending == 5
    assert "writing 5 rows failed" in caplog.text
    flaky.down = False
    await eventually(lambda: ledger.pending == 0)
    assert await stored(database) == 5


async def test_back_pressure_holds_recorders_while_the_database_is_down(
    database: Database, ledgers: list[UsageLedger]
) -> None:
    flaky = FlakyDatabase(database)
    ledger = started(ledgers, flaky, settings(interval=0.05, batch_size=5, max_pending=10))
    flaky.down = True

    async def record_twelve() -> None:
        for _ in range(12):
            await ledger.record(call())

    recorder = asyncio.create_task(record_twelve())
    await eventually(lambda: flaky.refused >= 2)
    assert not recorder.done()  # waiting for room, not dropping rows
    assert ledger.pending == 10
    flaky.down = False
    await asyncio.wait_for(recorder, 10)
    await ledger.flush()
    assert await stored(database) == 12


async def test_close_gives_up_after_its_timeout(database: Database, caplog: pytest.LogCaptureFixture) -> None:
    flaky = FlakyDatabase(database)
    ledger = UsageLedger(flaky, settings(interval=0.05), close_timeout_s=0.3)
    ledger.start()
    flaky.down = True
    for _ in range(3):
        await ledger.record(call())
    began = time.monotonic()
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        await ledger.close()
    assert time.monotonic() - began < 2.0
    assert "3 rows not written at shutdown" in caplog.text


async def test_a_refused_row_is_set_aside_and_the_rest_land(
    database: Database, ledgers: list[UsageLedger], caplog: pytest.LogCaptureFixture
) -> None:
    ledger = started(ledgers, database, settings())
    bad = UsageRecord("req-bad", "mini", "mini-1", "openai", 1, 1, 0.25, 1.0)  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        await ledger.record(call())
        await ledger.record(bad)
        await ledger.record(call())
        await ledger.flush()  # a poisoned batch must not be retried forever
    assert await stored(database) == 2
    assert list(ledger.rejected) == [bad]
    assert ledger.pending == 0
    assert "req-bad" in caplog.text


async def test_without_a_writer_a_full_buffer_is_written_by_the_caller(database: Database) -> None:
    ledger = UsageLedger(database, settings(batch_size=5, max_pending=5))  # never started
    for _ in range(5):
        await ledger.record(call())
    assert await stored(database) == 5
    await ledger.close()


async def test_report_filters_and_time_bounds(database: Database, ledgers: list[UsageLedger]) -> None:
    ledger = started(ledgers, database, settings())
    await ledger.record(call("a"))
    await ledger.record(call("b"))
    naive_hour_ago = datetime.now(UTC).replace(tzinfo=None) - timedelta(hours=1)  # taken as UTC
    assert [r.model for r in await ledger.report(start=naive_hour_ago)] == ["a", "b"]
    assert await ledger.report(end=naive_hour_ago) == []
    assert [r.model for r in await ledger.report(model="b", api_key="key-a")] == ["b"]
    assert await ledger.report(api_key="someone-else") == []
    [today] = await ledger.report(group_by="day")
    assert today.day == datetime.now(UTC).date() and today.requests == 2


async def test_report_refuses_start_after_end(database: Database) -> None:
    ledger = UsageLedger(database, settings())
    now = datetime.now(UTC)
    with pytest.raises(InvalidRequest):
        await ledger.report(start=now, end=now - timedelta(days=1))
