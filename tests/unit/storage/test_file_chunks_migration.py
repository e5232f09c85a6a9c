"""Migration 0008 moves each stored file's BLOB into chunk rows, byte for byte, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from llmserve.storage.db import Database
from llmserve.storage.jobs_repository import FileRepository
from llmserve.storage.models import FILE_CHUNK_BYTES


async def test_files_stored_before_the_chunks_keep_their_bytes(database_url: str) -> None:
    db = Database(database_url)
    try:
        await db.upgrade("0007")
        big = bytes(range(256)) * (FILE_CHUNK_BYTES // 256 * 2 + 3)  # two whole chunks and a part
        async with db.engine.begin() as connection:
            for file_id, content in (("file-big", big), ("file-small", b'{"a": 1}\n')):
                await connection.execute(
                    sa.text(
                        "INSERT INTO files (id, owner, purpose, filename, bytes, content, created_at) "
                        "VALUES (:id, 'o', 'batch', 'f.jsonl', :n, :content, :at)"
                    ),
                    {"id": file_id, "n": len(content), "content": content, "at": datetime.now(UTC)},
                )
        await db.upgrade()
        async with db.session(readonly=True) as session, session.begin():
            files = FileRepository(session)
            assert await files.read_all("file-big") == big
            assert await files.read_all("file-small") == b'{"a": 1}\n'
            assert await files.read_chunk("file-big", 2) == big[2 * FILE_CHUNK_BYTES :]
            assert await files.read_chunk("file-big", 3) is None
    finally:
        await db.dispose()
