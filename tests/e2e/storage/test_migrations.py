"""Alembic migrations when replicas start together: separate processes upgrading one database at once."""

from __future__ import annotations

import asyncio
import sys

import pytest

from llmserve.storage.db import Database
from tests.fixtures_db import current_revision, migration_head

pytestmark = pytest.mark.e2e

UPGRADE_SCRIPT = (
    "import asyncio, sys\n"
    "from llmserve.storage.db import Database\n"
    "asyncio.run(Database(sys.argv[1]).upgrade())\n"
)


async def test_replicas_upgrading_at_once_all_succeed(database_url: str) -> None:
    # Separate processes, as replicas are: they race to create the same tables unless serialised.
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", UPGRADE_SCRIPT, database_url, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(4)
    ]
    results = await asyncio.gather(*(proc.communicate() for proc in procs))
    errors = [stderr.decode() for proc, (_, stderr) in zip(procs, results, strict=True) if proc.returncode]
    assert errors == []
    db = Database(database_url)
    try:
        assert await current_revision(db) == migration_head()
    finally:
        await db.dispose()
