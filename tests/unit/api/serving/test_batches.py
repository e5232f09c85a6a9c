"""batches: the jobs subsystem's views as OpenAI's file and batch objects (what the SDK parses)."""

from __future__ import annotations

from datetime import UTC, datetime

from openai.types import Batch, FileObject

from llmserve.api.serving.batches import batch_object, file_object
from llmserve.jobs.batches import BatchView
from llmserve.jobs.files import FileInfo
from llmserve.storage.models import BatchRow

CREATED = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def test_a_file_is_an_sdk_file_object_with_unix_seconds() -> None:
    served = file_object(FileInfo("file-1", "batch", "in.jsonl", 42, CREATED)).model_dump()
    parsed = FileObject.model_validate(served)
    assert parsed.created_at == int(CREATED.timestamp()) and parsed.bytes == 42 and parsed.object == "file"


def test_a_batch_is_an_sdk_batch_with_its_counts_and_only_the_times_it_reached() -> None:
    row = BatchRow(
        id="batch_1",
        endpoint="/v1/chat/completions",
        input_file_id="file-1",
        completion_window="24h",
        status="in_progress",
        total=10,
        created_at=CREATED,
        expires_at=CREATED,
        in_progress_at=CREATED,
        errors=None,
        metadata_={"team": "a"},
    )
    parsed = Batch.model_validate(batch_object(BatchView(row, completed=7, failed=1)).model_dump())
    assert parsed.request_counts is not None
    assert (parsed.request_counts.total, parsed.request_counts.completed, parsed.request_counts.failed) == (
        10,
        7,
        1,
    )
    assert parsed.in_progress_at == int(CREATED.timestamp()) and parsed.completed_at is None
    assert parsed.errors is None and parsed.metadata == {"team": "a"}
