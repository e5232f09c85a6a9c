"""The per-tenant storage quota holds under concurrent uploads, on SQLite and PostgreSQL: two uploads
that each fit alone but not together store exactly one (on PostgreSQL several of eight used to pass
the check: each read the same sum before any committed)."""

from __future__ import annotations

import asyncio

from llmserve.jobs.files import FileService, StorageQuotaExceeded
from llmserve.storage.db import Database

QUOTA = 1000
PART = b'{"x": "' + b"y" * 590 + b'"}\n'  # two of these are over the quota, one is not


async def test_concurrent_uploads_cannot_both_take_the_last_room(database: Database) -> None:
    files = FileService(database, max_bytes=10_000, max_stored_bytes=QUOTA)
    outcomes = await asyncio.gather(
        *(files.create("tenant-a", "batch", f"part-{i}.jsonl", PART) for i in range(8)),
        return_exceptions=True,
    )
    stored = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, StorageQuotaExceeded)]
    assert len(stored) == 1 and len(refused) == 7, outcomes
    assert len(await files.list_for("tenant-a", None, 10)) == 1


async def test_one_tenants_full_quota_leaves_another_room(database: Database) -> None:
    files = FileService(database, max_bytes=10_000, max_stored_bytes=QUOTA)
    await files.create("tenant-a", "batch", "a.jsonl", PART)
    assert (await files.create("tenant-b", "batch", "b.jsonl", PART)).bytes == len(PART)
