"""Server-side chat history: read a conversation, record each exchange as one unit of work.

Every conversation has an owner, the tenant that started it (``RequestContext.tenant``: the API key,
or with authentication off a digest of the bearer token, or "anonymous"). Another tenant's
conversation is "not found" for reading and for writing, exactly like a missing one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from llmserve.errors import ConversationNotFound, InvalidRequest
from llmserve.request_context import ANONYMOUS
from llmserve.storage.db import Database
from llmserve.storage.models import MessageRow
from llmserve.storage.repositories import ConversationRepository, NewMessage, new_id

# Client-chosen ids end up in URLs, logs and cache keys; keep them to a safe, bounded alphabet.
CONVERSATION_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
TITLE_MAX_CHARS = 80


@dataclass(frozen=True, slots=True)
class Turn:
    role: str
    content: str


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: str
    conversation_id: str
    role: str
    content: str
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: MessageRow) -> StoredMessage:
        return cls(
            id=row.id,
            conversation_id=row.conversation_id,
            role=row.role,
            content=row.content,
            model=row.model,
            prompt_tokens=row.prompt_tokens,
            completion_tokens=row.completion_tokens,
            created_at=row.created_at,
        )


def validate_conversation_id(conversation_id: str) -> str:
    # fullmatch, not match with "$": "$" would also accept a trailing newline.
    if not isinstance(conversation_id, str) or not CONVERSATION_ID_RE.fullmatch(conversation_id):
        raise InvalidRequest(
            "conversation_id must be 1-64 characters of letters, digits, '-' or '_'",
            param="conversation_id",
        )
    return conversation_id


def _not_found(conversation_id: str) -> ConversationNotFound:
    return ConversationNotFound(f"Conversation '{conversation_id}' not found", param="conversation_id")


def _title_for(turns: Sequence[Turn]) -> str | None:
    first_user = next((turn.content for turn in turns if turn.role == "user"), None)
    if first_user is None:
        return None
    return first_user.strip()[:TITLE_MAX_CHARS] or None


class ConversationService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def history(self, conversation_id: str, *, owner: str = ANONYMOUS) -> list[Turn]:
        """The stored turns, oldest first, ready to prepend to a new prompt."""
        rows = await self._load(conversation_id, owner)
        return [Turn(role=row.role, content=row.content) for row in rows]

    async def messages(self, conversation_id: str, *, owner: str = ANONYMOUS) -> list[StoredMessage]:
        rows = await self._load(conversation_id, owner)
        return [StoredMessage.from_row(row) for row in rows]

    async def history_if_any(self, conversation_id: str, *, owner: str = ANONYMOUS) -> list[Turn] | None:
        """The stored turns; None for an id nobody has used yet (a client may name a new conversation).
        Another owner's conversation is not found (404), before anything is asked of a model."""
        validate_conversation_id(conversation_id)
        async with self._db.session(readonly=True) as session, session.begin():
            repo = ConversationRepository(session)
            row = await repo.get(conversation_id)
            if row is None:
                return None
            if row.owner != owner:
                raise _not_found(conversation_id)
            return [Turn(role=m.role, content=m.content) for m in await repo.list_messages(conversation_id)]

    async def record_exchange(
        self,
        conversation_id: str | None,
        new_turns: Sequence[Turn],
        reply: str,
        *,
        model: str,
        prompt_tokens: int,
        completion_tokens: int,
        create_if_missing: bool = True,
        reply_id: str | None = None,
        owner: str = ANONYMOUS,
    ) -> tuple[str, str]:
        """Store the new turns and the assistant's reply atomically; return (conversation id, reply id).

        ``reply_id`` lets a streaming caller announce the message id before the reply is complete.
        """
        if conversation_id is None:
            conversation_id = new_id()
        else:
            validate_conversation_id(conversation_id)
        reply_id = reply_id or new_id()
        batch = [NewMessage(role=turn.role, content=turn.content) for turn in new_turns]
        batch.append(
            NewMessage(
                role="assistant",
                content=reply,
                model=model,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                id=reply_id,
            )
        )
        async with self._db.session() as session, session.begin():
            repo = ConversationRepository(session)
            row = await repo.get(conversation_id)
            if row is None:
                if not create_if_missing:
                    raise _not_found(conversation_id)
                row = await repo.create(
                    conversation_id, owner=owner, model=model, title=_title_for(new_turns)
                )
            if row.owner != owner:  # also when another tenant created the same id a moment ago
                raise _not_found(conversation_id)
            await repo.append(conversation_id, batch)
        return conversation_id, reply_id

    async def _load(self, conversation_id: str, owner: str) -> list[MessageRow]:
        validate_conversation_id(conversation_id)
        # A read-only session: on SQLite it neither waits for nor blocks writers (WAL, deferred BEGIN).
        async with self._db.session(readonly=True) as session, session.begin():
            repo = ConversationRepository(session)
            row = await repo.get(conversation_id)
            if row is None or row.owner != owner:
                raise _not_found(conversation_id)
            return await repo.list_messages(conversation_id)
