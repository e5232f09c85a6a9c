"""Stored responses of the OpenAI Responses API (``/v1/responses``): the row and its repository.

One row per response: what the request asked (its input items as given, ``instructions``, the tools
and sampling, in ``request``), what the model answered (``output`` items, ``usage``), and where it
continues from (``previous_response_id``). A chain is rebuilt by walking ``previous_response_id``
back: each row holds only its own turn, so storing a long chain stays linear. Every row has an owner
(the tenant); every lookup is by owner and id, so another tenant sees a missing id.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from llmserve.storage.models import ResponseItemRow, ResponseRow

__all__ = ["MAX_CHAIN", "ResponseRepository", "ResponseRow"]

# A chain longer than this is refused (400), so a rebuild is bounded.
MAX_CHAIN = 1000


class ResponseRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, row: ResponseRow) -> None:
        self.session.add(row)
        await self.session.flush()  # the response first: its item rows refer to it
        await self.add_items(row.owner, row.id, [*row.request.get("input", []), *(row.output or [])])

    async def add_items(self, owner: str, response_id: str, items: list[Any]) -> None:
        """Indexes the items' ids; an id the tenant already has keeps pointing where it first was
        (a resolved reference is stored again under its own id)."""
        ids = {item["id"] for item in items if isinstance(item, dict) and isinstance(item.get("id"), str)}
        if not ids:
            return
        known = await self.session.scalars(
            select(ResponseItemRow.item_id).where(
                ResponseItemRow.owner == owner, ResponseItemRow.item_id.in_(ids)
            )
        )
        fresh = ids - set(known)
        self.session.add_all(ResponseItemRow(owner=owner, item_id=i, response_id=response_id) for i in fresh)

    async def items(self, owner: str, item_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The tenant's stored items with these ids (missing ones, and other tenants', are absent)."""
        rows = await self.session.execute(
            select(ResponseItemRow.item_id, ResponseRow)
            .join(ResponseRow, ResponseRow.id == ResponseItemRow.response_id)
            .where(ResponseItemRow.owner == owner, ResponseItemRow.item_id.in_(item_ids))
        )
        found: dict[str, dict[str, Any]] = {}
        for item_id, row in rows:
            for item in [*row.request.get("input", []), *(row.output or [])]:
                if isinstance(item, dict) and item.get("id") == item_id:
                    found[item_id] = item
                    break
        return found

    async def get(self, owner: str, response_id: str) -> ResponseRow | None:
        row = await self.session.get(ResponseRow, response_id)
        return row if row is not None and row.owner == owner else None

    async def by_job(self, job_id: str) -> ResponseRow | None:
        """The response a job runs; by job id alone: only the job runner's internal call asks, and it
        may run as a principal other than the submitter's tenant (auth off: a bearer digest)."""
        query = select(ResponseRow).where(ResponseRow.job_id == job_id)
        return (await self.session.scalars(query)).first()

    async def chain(self, owner: str, response_id: str) -> list[ResponseRow] | None:
        """The response and every one it continues from, oldest first; None if any link is missing
        (or another tenant's). At most ``MAX_CHAIN`` rows: a longer chain is None too."""
        rows: list[ResponseRow] = []
        current: str | None = response_id
        while current is not None:
            if len(rows) >= MAX_CHAIN:
                return None
            row = await self.get(owner, current)
            if row is None:
                return None
            rows.append(row)
            current = row.previous_response_id
        rows.reverse()
        return rows

    async def finish(self, response_id: str, values: dict[str, Any], *, unless: tuple[str, ...]) -> bool:
        """Sets ``values`` unless the row's status is one of ``unless`` (a cancelled response stays
        cancelled when its job still finishes); True when the row changed."""
        result = await self.session.execute(
            update(ResponseRow)
            .where(ResponseRow.id == response_id, ResponseRow.status.not_in(unless))
            .values(**values)
        )
        return bool(getattr(result, "rowcount", 0))

    async def delete(self, owner: str, response_id: str) -> bool:
        # The item index first: nothing relies on the backend honouring ON DELETE CASCADE.
        await self.session.execute(delete(ResponseItemRow).where(ResponseItemRow.response_id == response_id))
        result = await self.session.execute(
            delete(ResponseRow).where(ResponseRow.id == response_id, ResponseRow.owner == owner)
        )
        return bool(getattr(result, "rowcount", 0))

    async def ids_continuing(self, response_id: str) -> list[str]:
        query = select(ResponseRow.id).where(ResponseRow.previous_response_id == response_id)
        return list(await self.session.scalars(query))
