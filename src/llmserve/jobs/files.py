"""Files for the Batch API: uploads (purpose ``batch``) and the output / error files batches write.

Each file belongs to the tenant that uploaded it (or whose batch wrote it); another tenant's id
answers 404, exactly as an id that does not exist, so ids leak nothing.
"""

from __future__ import annotations

import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from llmserve.errors import InvalidRequest, NotFound
from llmserve.storage.db import Database
from llmserve.storage.jobs_repository import FileRepository
from llmserve.storage.models import FileRow, utcnow

UPLOAD_PURPOSES = ("batch",)
OUTPUT_PURPOSE = "batch_output"


@dataclass(frozen=True)
class FileInfo:
    id: str
    purpose: str
    filename: str
    bytes: int
    created_at: datetime

    @classmethod
    def from_row(cls, row: FileRow) -> FileInfo:
        return cls(row.id, row.purpose, row.filename, row.bytes, row.created_at)


def new_file_id() -> str:
    return "file-" + secrets.token_hex(12)


def new_file_row(owner: str, purpose: str, filename: str, content: bytes) -> FileRow:
    return FileRow(
        id=new_file_id(),
        owner=owner,
        purpose=purpose,
        filename=filename,
        bytes=len(content),
        content=content,
        created_at=utcnow(),
    )


class FileService:
    def __init__(self, database: Database, max_bytes: int) -> None:
        self._db = database
        self.max_bytes = max_bytes

    async def create(self, owner: str, purpose: str, filename: str, content: bytes) -> FileInfo:
        if purpose not in UPLOAD_PURPOSES:
            raise InvalidRequest(
                f"purpose must be one of {list(UPLOAD_PURPOSES)}, not {purpose!r}", param="purpose"
            )
        if not content:
            raise InvalidRequest("The file is empty", param="file", code="empty_file")
        if any(unicodedata.category(ch) == "Cc" for ch in filename):  # NUL, newlines, DEL, C1 controls
            raise InvalidRequest(
                "The filename may not contain control characters", param="file", code="invalid_filename"
            )
        row = new_file_row(owner, purpose, (filename or "upload.jsonl")[:255], content)
        async with self._db.session() as session, session.begin():
            FileRepository(session).add(row)
        return FileInfo.from_row(row)

    async def get(self, owner: str, file_id: str) -> FileInfo:
        async with self._db.session(readonly=True) as session, session.begin():
            return FileInfo.from_row(await _owned(session, owner, file_id))

    async def content(self, owner: str, file_id: str) -> tuple[FileInfo, bytes]:
        async with self._db.session(readonly=True) as session, session.begin():
            row = await _owned(session, owner, file_id)
            return FileInfo.from_row(row), await read_content(session, file_id) or b""

    async def list_for(self, owner: str, purpose: str | None, limit: int) -> list[FileInfo]:
        async with self._db.session(readonly=True) as session, session.begin():
            rows = await FileRepository(session).list_for(owner, purpose, limit)
            return [FileInfo.from_row(row) for row in rows]

    async def delete(self, owner: str, file_id: str) -> FileInfo:
        async with self._db.session() as session, session.begin():
            row = await _owned(session, owner, file_id)
            info = FileInfo.from_row(row)
            await FileRepository(session).delete(file_id)
            return info


async def _owned(session: AsyncSession, owner: str, file_id: str) -> FileRow:
    row = await FileRepository(session).get(file_id)
    if row is None or row.owner != owner:
        raise NotFound(f"No such file: {file_id}", param="file_id", code="file_not_found")
    return row


async def read_content(session: AsyncSession, file_id: str) -> bytes | None:
    content = await session.scalar(select(FileRow.content).where(FileRow.id == file_id))
    return content
