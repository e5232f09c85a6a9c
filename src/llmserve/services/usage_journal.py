"""The usage ledger's outbox: a per-process, append-only journal of the rows not yet committed.

``UsageLedger.record`` appends each row here (one ``os.write`` of one JSON line to an ``O_APPEND``
file) before it returns, so before the answer it bills leaves the process. A ``kill -9`` takes the
process's memory but not what it handed to the kernel: the page cache outlives the process. (Not
the machine: an fsync per row would cost milliseconds on the hot path, so a power cut can still lose
the rows the kernel had not yet written back.) Once the database has committed every row a file
holds, the file is emptied (``ftruncate``), or, when it grew past ``segment_max_bytes`` under load
that never lets the writer catch up, a new file is started and the old one deleted once committed.

Each live process holds an exclusive ``flock`` on its own files, so at start a file whose lock can
be taken has no owner: its process died. ``orphans`` hands such files over, lock held, to be
inserted (rows the database already has are skipped by entry id) and deleted. A file only appears
under its final name already locked (created under a temporary name, locked, then renamed), so a
recovering process never mistakes a journal being born for an orphan. flock needs a local disk:
on NFS the locks may not hold, so keep ``usage.journal_dir`` local.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from llmserve.storage.repositories import UsageRecord

logger = logging.getLogger(__name__)

JOURNAL_SUFFIX = ".journal"
TEMPORARY_SUFFIX = ".tmp"
SEGMENT_MAX_BYTES = 8 * 1024 * 1024  # about 25,000 rows
_FIELDS = frozenset(field.name for field in fields(UsageRecord))
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC


def encode(record: UsageRecord) -> bytes:
    """One JSON line: orjson writes the dataclass and its datetime itself, the Decimal as a string."""
    return orjson.dumps(record, default=str, option=orjson.OPT_APPEND_NEWLINE)


def decode(line: bytes) -> UsageRecord:
    """The record ``encode`` wrote; fields a newer version added are dropped, not refused."""
    data: dict[str, Any] = orjson.loads(line)
    data["cost_usd"] = Decimal(str(data["cost_usd"]))
    data["created_at"] = datetime.fromisoformat(data["created_at"])
    return UsageRecord(**{key: value for key, value in data.items() if key in _FIELDS})


def decode_all(data: bytes, source: Path) -> list[UsageRecord]:
    """Every whole, readable line; a torn one (a full disk mid-write) is logged and skipped."""
    records: list[UsageRecord] = []
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(decode(line))
        except (ValueError, TypeError, KeyError) as exc:
            logger.error("Usage journal %s line %d unreadable, skipped: %s: %r", source, number, exc, line)
    return records


@dataclass
class _Segment:
    path: Path
    fd: int
    size: int = 0
    last_seq: int = 0  # set when retired: the rows accepted up to then, all in this file or older


@dataclass
class Orphan:
    """A dead process's journal, its lock held until ``remove`` or ``release``."""

    path: Path
    file: BinaryIO
    records: list[UsageRecord]

    def remove(self) -> None:
        """Every row is in the database: delete the file (unlink first, so no one reopens it)."""
        self.path.unlink(missing_ok=True)
        self.file.close()

    def release(self) -> None:
        """Keep the file for a later start (the database refused for now)."""
        self.file.close()


class UsageJournal:
    """This process's journal files: the open one and those retired but not yet fully committed."""

    def __init__(self, directory: Path, *, segment_max_bytes: int = SEGMENT_MAX_BYTES) -> None:
        self.directory = directory
        self._segment_max_bytes = segment_max_bytes
        self._name = f"{os.getpid()}-{secrets.token_hex(6)}"
        self._made = 0
        self._current: _Segment | None = None
        self._retired: deque[_Segment] = deque()
        self._failing = False

    @property
    def paths(self) -> list[Path]:
        """This process's files, oldest first."""
        current = [self._current] if self._current is not None else []
        return [segment.path for segment in [*self._retired, *current]]

    def append(self, record: UsageRecord, seq: int) -> None:
        """Journal the ``seq``-th row accepted. A failed write is logged and the row kept in memory only:
        an answer already computed is not failed for a full disk."""
        try:
            segment = self._current or self._open()
            line = encode(record)
            self._write(segment, line)
        except OSError as exc:
            if not self._failing:
                logger.error(
                    "Usage journal: cannot write to %s, rows not crash-safe: %s", self.directory, exc
                )
            self._failing = True
            return
        self._failing = False
        if segment.size >= self._segment_max_bytes:
            segment.last_seq = seq
            self._retired.append(segment)
            self._current = None

    def committed(self, written: int, accepted: int) -> None:
        """The database has the first ``written`` of the ``accepted`` rows: drop the files they fill."""
        retired = self._retired
        while retired and retired[0].last_seq <= written:
            self._delete(retired.popleft())
        current = self._current
        if written >= accepted and current is not None and current.size:
            try:
                os.ftruncate(current.fd, 0)  # O_APPEND: the next row goes to offset 0
                current.size = 0
            except OSError as exc:  # the rows are committed: a larger file is only replayed for nothing
                logger.warning("Usage journal: cannot empty %s: %s", current.path, exc)

    def close(self, *, everything_committed: bool) -> None:
        """Delete the files if the database has every row; else leave them for the next start."""
        segments = [*self._retired, *([self._current] if self._current is not None else [])]
        self._retired.clear()
        self._current = None
        for segment in segments:
            if everything_committed:
                self._delete(segment)
            else:
                os.close(segment.fd)  # the lock goes with it: the next start recovers the file
        if segments and not everything_committed:
            logger.error("Usage journal: rows not written are kept in %s for the next start", self.directory)

    def orphans(self) -> Iterator[Orphan]:
        """Journals of dead processes, one at a time, each locked while the caller holds it."""
        with contextlib.suppress(FileNotFoundError):
            for path in sorted(self.directory.glob(f"*{JOURNAL_SUFFIX}")):
                orphan = _claim(path)
                if orphan is not None:
                    yield orphan
            for path in self.directory.glob(f".*{TEMPORARY_SUFFIX}"):
                _remove_stillborn(path)

    def _open(self) -> _Segment:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{self._name}-{self._made}"
        self._made += 1
        temporary = self.directory / f".{name}{TEMPORARY_SUFFIX}"
        final = self.directory / f"{name}{JOURNAL_SUFFIX}"
        fd = os.open(temporary, _NEW_FILE, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a file just made: no one else has it
            os.rename(temporary, final)
        except BaseException:
            os.close(fd)
            temporary.unlink(missing_ok=True)
            raise
        self._current = _Segment(final, fd)
        return self._current

    @staticmethod
    def _write(segment: _Segment, line: bytes) -> None:
        try:
            view = memoryview(line)
            while view:  # a regular file takes it whole but for a full disk; finish or fail
                view = view[os.write(segment.fd, view) :]
        except OSError:
            # Cut a torn line off, so the next row does not glue onto it and become unreadable too.
            with contextlib.suppress(OSError):
                os.ftruncate(segment.fd, segment.size)
            raise
        segment.size += len(line)

    @staticmethod
    def _delete(segment: _Segment) -> None:
        try:
            segment.path.unlink(missing_ok=True)  # before closing: the lock covers the unlink
        except OSError as exc:
            logger.warning(
                "Usage journal: cannot delete %s (it will be replayed for nothing): %s", segment.path, exc
            )
        os.close(segment.fd)


def _claim(path: Path) -> Orphan | None:
    """The journal at ``path`` with its lock held, or None if its process lives (or it is gone)."""
    try:
        file = path.open("rb")
    except FileNotFoundError:  # recovered and deleted by another process meanwhile
        return None
    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        # The lock was free: its owner is dead, or another recoverer deleted the file just before.
        if os.fstat(file.fileno()).st_ino != path.stat().st_ino:
            file.close()
            return None
        return Orphan(path, file, decode_all(file.read(), path))
    except (BlockingIOError, FileNotFoundError):  # a live process's, or just deleted
        file.close()
        return None
    except BaseException:
        file.close()
        raise


def _remove_stillborn(path: Path) -> None:
    """A temporary file of a process that died between creating and naming it: it holds no row."""
    try:
        with path.open("rb") as file:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            path.unlink(missing_ok=True)
    except (BlockingIOError, FileNotFoundError):
        pass
