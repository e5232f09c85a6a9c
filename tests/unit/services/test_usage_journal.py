"""The usage ledger's journal: every recorded row is on disk before ``record`` returns, the file is
emptied once the database has it, and a dead process's journal is inserted once at the next start.

A "dead process" here is a journal closed without its rows committed: its lock goes, as with
``kill -9``, and the file stays (the e2e tier kills a real server: tests/e2e/storage).
"""

from __future__ import annotations

import fcntl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from llmserve.config import UsageSettings, load_settings
from llmserve.services.usage import UsageLedger, UsageRecord, journal_dir_for
from llmserve.services.usage_journal import UsageJournal, decode, encode
from llmserve.storage.db import Database
from llmserve.storage.models import UsageLedgerRow
from tests.unit.services.test_usage import FlakyDatabase, call

LONG = UsageSettings(flush_interval_seconds=60.0, batch_size=500, max_pending=10_000)


async def stored(db: Database) -> list[str | None]:
    async with db.session(readonly=True) as session:
        return list(await session.scalars(select(UsageLedgerRow.entry_id).order_by(UsageLedgerRow.id)))


async def count(db: Database) -> int:
    async with db.session(readonly=True) as session:
        return await session.scalar(select(func.count()).select_from(UsageLedgerRow)) or 0


def files(directory: Path) -> list[Path]:
    return sorted(directory.iterdir())


def journaled(directory: Path) -> list[UsageRecord]:
    return [
        decode(line)
        for path in sorted(directory.glob("*.journal"))
        for line in path.read_bytes().splitlines()
    ]


@pytest.fixture
async def ledgers() -> AsyncIterator[list[UsageLedger]]:
    made: list[UsageLedger] = []
    yield made
    for ledger in made:
        await ledger.close()


@pytest.fixture
def journal_dir(tmp_path: Path) -> Path:
    return tmp_path / "usage-journal"  # tmp_path also holds the SQLite data dir


def ledger_in(
    made: list[UsageLedger], db: Database, directory: Path, close_timeout_s: float = 10.0
) -> UsageLedger:
    ledger = UsageLedger(db, LONG, journal_dir=directory, close_timeout_s=close_timeout_s)
    made.append(ledger)
    return ledger


def die(ledger: UsageLedger) -> None:
    """What kill -9 leaves: the journal files, unlocked; nothing of the buffer."""
    journal = ledger._journal
    assert journal is not None
    journal.close(everything_committed=False)


def test_a_record_survives_the_round_trip_through_its_line() -> None:
    record = call()
    assert decode(encode(record)) == record
    assert encode(record).endswith(b"\n") and encode(record).count(b"\n") == 1


async def test_record_puts_the_row_on_disk_before_it_returns(
    database: Database, journal_dir: Path, ledgers: list[UsageLedger]
) -> None:
    ledger = ledger_in(ledgers, database, journal_dir)
    first, second = call(), call("other")
    await ledger.record(first)
    assert journaled(journal_dir) == [first]  # no flush, no writer: only the journal has it
    await ledger.record(second)
    assert journaled(journal_dir) == [first, second]
    assert await count(database) == 0


async def test_the_journal_is_emptied_once_the_database_has_every_row(
    database: Database, journal_dir: Path, ledgers: list[UsageLedger]
) -> None:
    ledger = ledger_in(ledgers, database, journal_dir)
    for _ in range(3):
        await ledger.record(call())
    await ledger.flush()
    assert journaled(journal_dir) == []
    kept = files(journal_dir)  # kept (locked) for the next rows: no new file per flush
    await ledger.record(late := call())
    assert journaled(journal_dir) == [late] and files(journal_dir) == kept
    await ledger.close()
    assert files(journal_dir) == []  # a clean stop leaves nothing to recover
    assert await count(database) == 4


async def test_a_full_journal_rotates_and_goes_once_its_rows_are_committed(
    database: Database, journal_dir: Path, ledgers: list[UsageLedger]
) -> None:
    ledger = ledger_in(ledgers, database, journal_dir)
    journal = ledger._journal
    assert journal is not None
    rows = [call(prompt_tokens=n) for n in range(5)]  # lines of one length
    journal._segment_max_bytes = len(encode(rows[0])) * 2  # two rows a file
    for row in rows:
        await ledger.record(row)
    assert len(journal.paths) == 3 and journaled(journal_dir) == rows
    # A writer behind a steady stream of rows: each file goes once all of its rows are committed.
    journal.committed(3, 5)
    assert len(journal.paths) == 2 and journaled(journal_dir) == rows[2:]
    journal.committed(4, 5)
    assert journaled(journal_dir) == rows[4:]
    await ledger.flush()
    assert journaled(journal_dir) == [] and await count(database) == 5


async def test_a_dead_process_journal_is_inserted_at_start_and_deleted(
    database: Database, journal_dir: Path, ledgers: list[UsageLedger]
) -> None:
    crashed = ledger_in(ledgers, database, journal_dir)
    rows = [call(prompt_tokens=n) for n in range(3)]
    for row in rows:
        await crashed.record(row)
    die(crashed)

    restarted = ledger_in(ledgers, database, journal_dir)
    assert await restarted.recover() == 3
    assert await stored(database) == [row.entry_id for row in rows]
    assert files(journal_dir) == []
    [report] = await restarted.report()
    assert report.requests == 3 and report.prompt_tokens == 0 + 1 + 2


async def test_rows_committed_just_before_the_crash_are_not_inserted_twice(
    database: Database, journal_dir: Path, ledgers: list[UsageLedger]
) -> None:
    crashed = ledger_in(ledgers, database, journal_dir)
    rows = [call(prompt_tokens=n) for n in range(4)]
    for row in rows[:3]:
        await crashed.record(row)
    await crashed._insert(rows[:2])  # committed, but the process died before emptying its journal
    await crashed.record(rows[3])
    die(crashed)

    restarted = ledger_in(ledgers, database, journal_dir)
    assert await restarted.recover() == 4
    assert sorted(await stored(database), key=str) == sorted(row.entry_id for row in rows)
    # Recovered again (say a second replica raced this one to the file): still once each.
    await restarted._insert(rows)
    assert await count(database) == 4


async def test_a_live_process_journal_is_left_alone(
    database: Database, journal_dir: Path, ledgers: list[UsageLedger]
) -> None:
    live = ledger_in(ledgers, database, journal_dir)
    await live.record(row := call())
    starting = ledger_in(ledgers, database, journal_dir)
    assert await starting.recover() == 0
    assert await count(database) == 0 and journaled(journal_dir) == [row]
    await live.flush()
    assert await stored(database) == [row.entry_id]


async def test_a_journal_the_database_refuses_is_kept_for_the_next_start(
    database: Database, journal_dir: Path, ledgers: list[UsageLedger]
) -> None:
    crashed = ledger_in(ledgers, database, journal_dir)
    await crashed.record(row := call())
    die(crashed)
    flaky = FlakyDatabase(database)
    flaky.down = True
    failing = ledger_in(ledgers, flaky, journal_dir, close_timeout_s=0.2)
    assert await failing.recover() == 0
    assert journaled(journal_dir) == [row]
    await failing.close()  # still down: its buffer is lost with it, the journal is not
    flaky.down = False

    assert await ledger_in(ledgers, database, journal_dir).recover() == 1
    assert await stored(database) == [row.entry_id]


async def test_a_torn_last_line_costs_only_itself(
    database: Database, journal_dir: Path, ledgers: list[UsageLedger]
) -> None:
    crashed = ledger_in(ledgers, database, journal_dir)
    await crashed.record(row := call())
    die(crashed)
    [path] = files(journal_dir)
    with path.open("ab") as file:
        file.write(encode(call())[:40])
    assert await ledger_in(ledgers, database, journal_dir).recover() == 1
    assert await stored(database) == [row.entry_id]


def test_a_journal_is_locked_from_the_moment_it_has_its_name(journal_dir: Path) -> None:
    journal = UsageJournal(journal_dir)
    journal.append(call(), 1)
    [path] = journal.paths
    assert list(journal_dir.iterdir()) == [path]  # the temporary name is gone
    with path.open("rb") as other, pytest.raises(BlockingIOError):
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert list(journal.orphans()) == []
    journal.close(everything_committed=True)


def test_a_stillborn_journal_is_swept(journal_dir: Path) -> None:
    journal_dir.mkdir()
    (journal_dir / ".123-abc-0.tmp").write_bytes(b"")  # died between creating and naming it
    assert list(UsageJournal(journal_dir).orphans()) == []
    assert files(journal_dir) == []


async def test_an_unwritable_journal_does_not_fail_the_request(
    database: Database, tmp_path: Path, ledgers: list[UsageLedger], caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    ledger = ledger_in(ledgers, database, blocked / "journal")
    await ledger.record(call())
    await ledger.record(call())
    errors = [r.message for r in caplog.records if r.message.startswith("Usage journal: cannot write")]
    assert len(errors) == 1  # once, not once per request
    await ledger.flush()
    assert await count(database) == 2


def test_the_journal_lives_in_the_data_dir_unless_told_otherwise(tmp_path: Path) -> None:
    assert journal_dir_for(load_settings(data_dir=str(tmp_path))) == tmp_path / "usage-journal"
    elsewhere = load_settings(data_dir=str(tmp_path), usage={"journal_dir": str(tmp_path / "j")})
    assert journal_dir_for(elsewhere) == tmp_path / "j"
    assert journal_dir_for(load_settings(data_dir=str(tmp_path), usage={"journal": False})) is None
