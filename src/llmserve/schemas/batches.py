"""Wire formats of the Files, Batches and async-jobs APIs (OpenAI's shapes where OpenAI has them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmserve.jobs.batches import BatchView
from llmserve.jobs.files import FileInfo


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


def _ts(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: str = "processed"
    status_details: str | None = None
    expires_at: int | None = None

    @classmethod
    def of(cls, info: FileInfo) -> FileObject:
        return cls(
            id=info.id,
            bytes=info.bytes,
            created_at=_ts(info.created_at) or 0,
            filename=info.filename,
            purpose=info.purpose,
        )


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FileObject]
    has_more: bool = False


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


class BatchCreateRequest(_Lenient):
    input_file_id: str = Field(min_length=1, max_length=64)
    endpoint: str = Field(min_length=1, max_length=64)
    completion_window: str = "24h"
    metadata: dict[str, Any] | None = None


class RequestCounts(BaseModel):
    total: int
    completed: int
    failed: int


class BatchErrors(BaseModel):
    object: Literal["list"] = "list"
    data: list[dict[str, Any]]


class BatchObject(BaseModel):
    id: str
    object: Literal["batch"] = "batch"
    endpoint: str
    errors: BatchErrors | None
    input_file_id: str
    completion_window: str
    status: str
    output_file_id: str | None
    error_file_id: str | None
    created_at: int
    in_progress_at: int | None
    expires_at: int | None
    finalizing_at: int | None
    completed_at: int | None
    failed_at: int | None
    expired_at: int | None
    cancelling_at: int | None
    cancelled_at: int | None
    request_counts: RequestCounts
    metadata: dict[str, Any] | None

    @classmethod
    def of(cls, view: BatchView) -> BatchObject:
        row = view.row
        return cls(
            id=row.id,
            endpoint=row.endpoint,
            errors=BatchErrors(data=row.errors) if row.errors else None,
            input_file_id=row.input_file_id,
            completion_window=row.completion_window,
            status=row.status,
            output_file_id=row.output_file_id,
            error_file_id=row.error_file_id,
            created_at=_ts(row.created_at) or 0,
            in_progress_at=_ts(row.in_progress_at),
            expires_at=_ts(row.expires_at),
            finalizing_at=_ts(row.finalizing_at),
            completed_at=_ts(row.completed_at),
            failed_at=_ts(row.failed_at),
            expired_at=_ts(row.expired_at),
            cancelling_at=_ts(row.cancelling_at),
            cancelled_at=_ts(row.cancelled_at),
            request_counts=RequestCounts(total=row.total, completed=view.completed, failed=view.failed),
            metadata=row.metadata_,
        )


class BatchList(BaseModel):
    object: Literal["list"] = "list"
    data: list[BatchObject]
    first_id: str | None
    last_id: str | None
    has_more: bool
