"""The kinds of queued unit and the ids they get.

Ids of a batch's units are derived from the batch id, so preparing or finalising a batch twice
(a redelivered message, two workers racing) targets the same rows instead of adding new ones.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any, Literal

from llmserve.storage.jobs_repository import QUEUED
from llmserve.storage.models import JobRow

UnitKind = Literal["request", "line", "prepare", "finalize"]
REQUEST: UnitKind = "request"
LINE: UnitKind = "line"
PREPARE: UnitKind = "prepare"
FINALIZE: UnitKind = "finalize"
# Bookkeeping steps run ahead of any request.
HOUSEKEEPING_PRIORITY = 0


def new_job_id() -> str:
    return "job_" + secrets.token_hex(16)


def new_batch_id() -> str:
    return "batch_" + secrets.token_hex(16)


def line_id(batch_id: str, line: int) -> str:
    return f"batch_req_{batch_id.removeprefix('batch_')}_{line}"


def prepare_id(batch_id: str) -> str:
    return f"prep_{batch_id}"


def finalize_id(batch_id: str) -> str:
    return f"fin_{batch_id}"


def step_row(kind: UnitKind, batch_id: str, owner: str, now: datetime) -> JobRow:
    unit_id = prepare_id(batch_id) if kind == PREPARE else finalize_id(batch_id)
    return JobRow(
        id=unit_id,
        kind=kind,
        batch_id=batch_id,
        owner=owner,
        endpoint="",
        status=QUEUED,
        priority=HOUSEKEEPING_PRIORITY,
        attempts=0,
        created_at=now,
    )


def request_row(
    *,
    unit_id: str,
    kind: UnitKind,
    owner: str,
    key_id: str | None,
    endpoint: str,
    body: dict[str, Any] | None,
    priority: int,
    now: datetime,
    batch_id: str | None = None,
    line: int | None = None,
    custom_id: str | None = None,
    callback_url: str | None = None,
    retention: timedelta | None = None,
) -> JobRow:
    return JobRow(
        id=unit_id,
        kind=kind,
        batch_id=batch_id,
        line=line,
        custom_id=custom_id,
        owner=owner,
        key_id=key_id,
        endpoint=endpoint,
        body=body,
        status=QUEUED,
        priority=priority,
        attempts=0,
        callback_url=callback_url,
        created_at=now,
        expires_at=now + retention if retention is not None else None,
    )
