"""Files and batches: the jobs subsystem's views → OpenAI's ``file`` and ``batch`` objects."""

from __future__ import annotations

from datetime import datetime

from llmserve.jobs.batches import BatchView
from llmserve.jobs.files import FileInfo
from llmserve.schemas.batches import BatchErrors, BatchObject, FileObject, RequestCounts


def file_object(info: FileInfo) -> FileObject:
    return FileObject(
        id=info.id,
        bytes=info.bytes,
        created_at=_ts(info.created_at) or 0,
        filename=info.filename,
        purpose=info.purpose,
    )


def batch_object(view: BatchView) -> BatchObject:
    row = view.row
    return BatchObject(
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


def _ts(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None
