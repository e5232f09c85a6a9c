"""Files for the Batch API: uploads (purpose ``batch``) and the output / error files batches write.

Each file belongs to the tenant that uploaded it (or whose batch wrote it); another tenant's id
answers 404, exactly as an id that does not exist, so ids leak nothing.
"""

from __future__ import annotations

import secrets
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from llmserve.errors import InvalidRequest, LLMServeError, NotFound
from llmserve.storage.db import Database
from llmserve.storage.jobs_repository import FileRepository
from llmserve.storage.models import FILE_CHUNK_BYTES, FileRow, utcnow

UPLOAD_PURPOSES = ("batch",)
OUTPUT_PURPOSE = "batch_output"
# Downloads and uploads move through memory this much at a time, whatever the file's size.
CHUNK_BYTES = FILE_CHUNK_BYTES  # uploads are read, and downloads sent, a stored chunk at a time


class StorageQuotaExceeded(LLMServeError):
    status_code = 413
    error_type = "invalid_request_error"
    code = "storage_quota_exceeded"


class ChunkReader(Protocol):
    """What an upload is read from (starlette's ``UploadFile``): ``read(n)`` gives at most n bytes."""

    size: int | None

    async def read(self, size: int = -1) -> bytes: ...


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
        created_at=utcnow(),
    )


class FileService:
    def __init__(self, database: Database, max_bytes: int, max_stored_bytes: int | None = None) -> None:
        self._db = database
        self.max_bytes = max_bytes
        self.max_stored_bytes = max_stored_bytes

    async def read_upload(self, upload: ChunkReader) -> bytes:
        """The part's bytes, read CHUNK_BYTES at a time; one over the limit stops the reading there."""
        if upload.size is not None and upload.size > self.max_bytes:
            raise _too_large(self.max_bytes)
        content = bytearray()
        while chunk := await upload.read(CHUNK_BYTES):
            content += chunk
            if len(content) > self.max_bytes:
                raise _too_large(self.max_bytes)
        return bytes(content)

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
            await self._check_quota(session, owner, len(content))
            await FileRepository(session).add(row, content)
        return FileInfo.from_row(row)

    async def _check_quota(self, session: AsyncSession, owner: str, size: int) -> None:
        if self.max_stored_bytes is None:
            return
        files = FileRepository(session)
        await files.lock_owner_files(owner)
        stored = await files.stored_bytes(owner)
        if stored + size > self.max_stored_bytes:
            raise StorageQuotaExceeded(
                f"Storing this file ({size} bytes) would exceed the storage quota of "
                f"{self.max_stored_bytes} bytes ({stored} bytes stored); delete files to make room",
                param="file",
            )

    async def get(self, owner: str, file_id: str) -> FileInfo:
        async with self._db.session(readonly=True) as session, session.begin():
            return FileInfo.from_row(await _owned(session, owner, file_id))

    async def content(self, owner: str, file_id: str) -> tuple[FileInfo, bytes]:
        info, chunks = await self.open_content(owner, file_id)
        return info, b"".join([chunk async for chunk in chunks])

    async def open_content(self, owner: str, file_id: str) -> tuple[FileInfo, AsyncIterator[bytes]]:
        """The file's metadata now (404 before any byte), and its bytes as CHUNK_BYTES slices, each
        read in its own short transaction so a slow download holds no connection between them."""
        async with self._db.session(readonly=True) as session, session.begin():
            info = FileInfo.from_row(await _owned(session, owner, file_id))
        return info, self._chunks(info)

    async def _chunks(self, info: FileInfo) -> AsyncIterator[bytes]:
        for seq in range(-(-info.bytes // CHUNK_BYTES)):
            async with self._db.session(readonly=True) as session, session.begin():
                chunk = await FileRepository(session).read_chunk(info.id, seq)
            if not chunk:  # deleted while it was being read: end short, never pad
                raise NotFound(f"The file {info.id} was deleted during the download", code="file_not_found")
            yield chunk

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


def _too_large(limit: int) -> InvalidRequest:
    return InvalidRequest(f"The file is larger than the limit of {limit} bytes", param="file")


async def read_content(session: AsyncSession, file_id: str) -> bytes | None:
    return await FileRepository(session).read_all(file_id)
