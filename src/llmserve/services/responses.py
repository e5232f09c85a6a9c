"""Stored responses (the Responses API's state): save, read, chain, finish, cancel, delete.

A response is saved in the same step that makes it visible: a non-streamed one before its body is
sent, a streamed one before ``response.completed`` is sent, so a ``GET`` or a
``previous_response_id`` right after always finds it. Everything is by owner: another tenant's id
is a missing id.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from llmserve.errors import InvalidRequest, NotFound
from llmserve.storage.db import Database
from llmserve.storage.models import utcnow
from llmserve.storage.response_rows import MAX_CHAIN, ResponseRepository, ResponseRow

FINISHED = ("completed", "failed", "cancelled", "incomplete")


def new_response_id() -> str:
    return f"resp_{uuid.uuid4().hex}"


class ResponseNotFound(NotFound):
    code = "response_not_found"


@dataclass
class StoredResponse:
    """One response as stored: ``request`` holds its normalised input items (``input``) and the
    request fields a ``Response`` object echoes (instructions, tools, sampling, metadata, ...)."""

    id: str
    owner: str
    model: str
    request: dict[str, Any]
    status: str = "in_progress"
    previous_response_id: str | None = None
    output: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    incomplete_reason: str | None = None
    job_id: str | None = None
    created_at: datetime = field(default_factory=utcnow)
    completed_at: datetime | None = None

    @classmethod
    def from_row(cls, row: ResponseRow) -> StoredResponse:
        return cls(
            id=row.id,
            owner=row.owner,
            model=row.model,
            request=dict(row.request),
            status=row.status,
            previous_response_id=row.previous_response_id,
            output=list(row.output or []),
            usage=row.usage,
            error=row.error,
            incomplete_reason=row.incomplete_reason,
            job_id=row.job_id,
            created_at=row.created_at,
            completed_at=row.completed_at,
        )

    def to_row(self) -> ResponseRow:
        return ResponseRow(
            id=self.id,
            owner=self.owner,
            model=self.model,
            request=self.request,
            status=self.status,
            previous_response_id=self.previous_response_id,
            output=self.output,
            usage=self.usage,
            error=self.error,
            incomplete_reason=self.incomplete_reason,
            job_id=self.job_id,
            created_at=self.created_at,
            completed_at=self.completed_at,
        )

    @property
    def input_items(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.request.get("input", [])
        return items


class ResponseStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def save(self, response: StoredResponse) -> None:
        async with self._db.session() as session, session.begin():
            await ResponseRepository(session).add(response.to_row())

    async def get(self, owner: str, response_id: str) -> StoredResponse:
        async with self._db.session(readonly=True) as session, session.begin():
            row = await ResponseRepository(session).get(owner, response_id)
        if row is None:
            raise ResponseNotFound(f"Response with id '{response_id}' not found.", param="response_id")
        return StoredResponse.from_row(row)

    async def by_job(self, job_id: str) -> StoredResponse | None:
        """The background response a job is running, if ``job_id`` is one."""
        async with self._db.session(readonly=True) as session, session.begin():
            row = await ResponseRepository(session).by_job(job_id)
        return None if row is None else StoredResponse.from_row(row)

    async def context_of(self, owner: str, previous_response_id: str) -> list[dict[str, Any]]:
        """Every item of the chain ending at ``previous_response_id``, oldest first: each response's
        input items, then its output items. 400 when the chain is broken (or not the caller's)."""
        async with self._db.session(readonly=True) as session, session.begin():
            rows = await ResponseRepository(session).chain(owner, previous_response_id)
        if rows is None:
            raise InvalidRequest(
                f"Previous response with id '{previous_response_id}' not found "
                f"(or its chain is longer than {MAX_CHAIN} responses).",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        unusable = next((row for row in rows if row.status not in ("completed", "incomplete")), None)
        if unusable is not None:
            raise InvalidRequest(
                f"Previous response '{unusable.id}' is {unusable.status}; only a completed response "
                "can be continued",
                param="previous_response_id",
            )
        items: list[dict[str, Any]] = []
        for row in rows:
            items.extend(row.request.get("input", []))
            items.extend(row.output or [])
        return items

    async def finish(self, response: StoredResponse) -> bool:
        """Writes the outcome of a response saved earlier (a background one); False when it was
        cancelled meanwhile (the outcome is then dropped)."""
        values = {
            "status": response.status,
            "output": response.output,
            "usage": response.usage,
            "error": response.error,
            "incomplete_reason": response.incomplete_reason,
            "completed_at": response.completed_at or utcnow(),
            "model": response.model,
        }
        async with self._db.session() as session, session.begin():
            repository = ResponseRepository(session)
            if not await repository.finish(response.id, values, unless=FINISHED):
                return False
            await repository.add_items(response.owner, response.id, response.output)
            return True

    async def resolve(self, owner: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``items`` with each ``item_reference`` replaced by the tenant's stored item it names; 400
        naming the reference when there is none (or it is another tenant's)."""
        wanted = [item["id"] for item in items if item["type"] == "item_reference"]
        if not wanted:
            return items
        async with self._db.session(readonly=True) as session, session.begin():
            found = await ResponseRepository(session).items(owner, wanted)
        resolved = []
        for position, item in enumerate(items):
            if item["type"] == "item_reference":
                if item["id"] not in found:
                    raise InvalidRequest(f"Item with id '{item['id']}' not found.", param=f"input.{position}")
                item = found[item["id"]]
            resolved.append(item)
        return resolved

    async def start(self, response_id: str) -> bool:
        """queued → in_progress, when a background response's job begins; False if it was cancelled."""
        async with self._db.session() as session, session.begin():
            repository = ResponseRepository(session)
            return await repository.finish(response_id, {"status": "in_progress"}, unless=FINISHED)

    async def cancel(self, owner: str, response_id: str) -> StoredResponse:
        response = await self.get(owner, response_id)
        if response.job_id is None:
            raise InvalidRequest(
                "Only responses created with background: true can be cancelled", param="response_id"
            )
        if response.status in FINISHED:
            return response
        async with self._db.session() as session, session.begin():
            await ResponseRepository(session).finish(
                response_id, {"status": "cancelled", "completed_at": utcnow()}, unless=FINISHED
            )
        return await self.get(owner, response_id)

    async def delete(self, owner: str, response_id: str) -> None:
        async with self._db.session() as session, session.begin():
            if not await ResponseRepository(session).delete(owner, response_id):
                raise ResponseNotFound(f"Response with id '{response_id}' not found.", param="response_id")
