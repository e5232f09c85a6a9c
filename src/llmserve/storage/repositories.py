"""Data access for conversations. Repositories never commit: the calling service owns the transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from llmserve.errors import ConversationNotFound
from llmserve.storage.models import ConversationRow, MessageRow, utcnow


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class NewMessage:
    role: str
    content: str
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    id: str | None = None  # minted here when None; callers pass one to announce it before storing


class ConversationRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, conversation_id: str) -> ConversationRow | None:
        return await self._session.get(ConversationRow, conversation_id)

    async def create(self, conversation_id: str, *, model: str | None, title: str | None) -> ConversationRow:
        """Create the conversation, or return the existing row if a concurrent transaction won the race.

        Two requests may start the same client-named conversation at once; a plain INSERT would fail
        one of them with a primary-key violation, so the insert skips on conflict instead.
        """
        now = utcnow()
        values = {"id": conversation_id, "model": model, "title": title, "created_at": now, "updated_at": now}
        dialect = self._session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        await self._session.execute(
            insert(ConversationRow).values(values).on_conflict_do_nothing(index_elements=["id"])
        )
        row = await self._session.get(ConversationRow, conversation_id, populate_existing=True)
        assert row is not None  # inserted above, or committed by the transaction that conflicted
        return row

    async def append(self, conversation_id: str, messages: Sequence[NewMessage]) -> list[MessageRow]:
        """Append ``messages`` after the last stored one, in order, and bump ``updated_at``."""
        if not messages:
            return []
        # Locking the conversation row serialises appenders on PostgreSQL, so each one reads the max
        # seq its predecessor committed. SQLite ignores FOR UPDATE; its writers already hold the
        # database write lock for the whole transaction (BEGIN IMMEDIATE, see db.py).
        conversation = await self._session.scalar(
            select(ConversationRow)
            .where(ConversationRow.id == conversation_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        if conversation is None:
            raise ConversationNotFound(f"Conversation '{conversation_id}' not found", param="conversation_id")
        last_seq = await self._session.scalar(
            select(func.max(MessageRow.seq)).where(MessageRow.conversation_id == conversation_id)
        )
        next_seq = 1 if last_seq is None else last_seq + 1
        now = utcnow()
        rows = [
            MessageRow(
                id=message.id or new_id(),
                conversation_id=conversation_id,
                seq=next_seq + offset,
                role=message.role,
                content=message.content,
                model=message.model,
                prompt_tokens=message.prompt_tokens,
                completion_tokens=message.completion_tokens,
                created_at=now,
            )
            for offset, message in enumerate(messages)
        ]
        self._session.add_all(rows)
        conversation.updated_at = now
        await self._session.flush()
        return rows

    async def list_messages(self, conversation_id: str, limit: int | None = None) -> list[MessageRow]:
        """Messages oldest first; with ``limit``, the most recent ``limit`` of them (still oldest first)."""
        query = select(MessageRow).where(MessageRow.conversation_id == conversation_id)
        if limit is None:
            result = await self._session.scalars(query.order_by(MessageRow.seq))
            return list(result)
        result = await self._session.scalars(query.order_by(MessageRow.seq.desc()).limit(limit))
        return list(reversed(result.all()))
