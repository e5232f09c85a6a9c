"""Data access for conversations, usage and API keys.

Repositories never commit: the service owns the transaction.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import ColumnElement, Date, case, cast, func, literal_column, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from llmserve.errors import ConversationNotFound
from llmserve.storage.models import (
    ENTRY_ID_LENGTH,
    NAME_LENGTH,
    PROVIDER_LENGTH,
    REQUEST_ID_LENGTH,
    ApiKeyRow,
    Base,
    ConversationRow,
    MessageRow,
    UsageLedgerRow,
    utcnow,
)


def new_id() -> str:
    return uuid.uuid4().hex


def new_entry_id() -> str:
    # 16 random bytes straight from the OS: a third of uuid4's cost, on every answered request.
    return os.urandom(16).hex()


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

    async def create(
        self, conversation_id: str, *, owner: str, model: str | None, title: str | None
    ) -> ConversationRow:
        """Create the conversation, or return the existing row if a concurrent transaction won the race.

        Two requests may start the same client-named conversation at once; a plain INSERT would fail
        one of them with a primary-key violation, so the insert skips on conflict instead.
        """
        now = utcnow()
        values = {
            "id": conversation_id,
            "owner": owner,
            "model": model,
            "title": title,
            "created_at": now,
            "updated_at": now,
        }
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


CacheStatus = Literal["miss", "hit", "semantic-hit", "none"]
CallStatus = Literal["ok", "error"]
UsageGroupBy = Literal["model", "day", "model,day"]
CACHE_HITS: tuple[CacheStatus, ...] = ("hit", "semantic-hit")
USAGE_TABLE = Base.metadata.tables[UsageLedgerRow.__tablename__]


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One upstream call (or cache answer) as the pipeline reports it.

    ``cost_usd`` comes from ``services.pricing.cost_usd`` (a Decimal; floats are refused on write).
    ``tokens_estimated`` is true when the counts are an estimate, not the tokenizer's or upstream's.
    ``created_at`` defaults to the moment the record is made, i.e. when the call was answered.
    ``entry_id`` is the row's identity, minted with it: inserting the same record twice adds one row.
    """

    request_id: str
    model: str
    deployment: str
    provider: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal
    latency_ms: float
    api_key: str | None = None
    cache_status: CacheStatus = "none"
    tokens_estimated: bool = False
    status: CallStatus = "ok"
    created_at: datetime = field(default_factory=utcnow)
    entry_id: str = field(default_factory=new_entry_id)


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One group of a usage report; ``model``/``day`` are None when not grouped by them."""

    model: str | None
    day: date | None
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal
    cache_hits: int
    errors: int


def _values(record: UsageRecord) -> dict[str, Any]:
    # Clipped to the column sizes: PostgreSQL refuses over-long strings, and one bad row would
    # otherwise fail every retry of the batch it sits in.
    return {
        "created_at": record.created_at,
        "request_id": record.request_id[:REQUEST_ID_LENGTH],
        "api_key": None if record.api_key is None else record.api_key[:NAME_LENGTH],
        "model": record.model[:NAME_LENGTH],
        "deployment": record.deployment[:NAME_LENGTH],
        "provider": record.provider[:PROVIDER_LENGTH],
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "cost_usd": record.cost_usd,
        "cache_status": record.cache_status,
        "latency_ms": record.latency_ms,
        "tokens_estimated": record.tokens_estimated,
        "status": record.status,
        "entry_id": record.entry_id[:ENTRY_ID_LENGTH],
    }


def _day_bucket(dialect: str) -> ColumnElement[Any]:
    """The UTC calendar day of ``created_at``, computed by the database."""
    if dialect == "postgresql":
        # timestamptz -> UTC wall time -> date, whatever the session's TimeZone is. A literal, not a
        # bound parameter: SELECT and GROUP BY must render the very same expression.
        return cast(func.timezone(literal_column("'UTC'"), UsageLedgerRow.created_at), Date)
    # SQLite stores UTC text 'YYYY-MM-DD HH:MM:SS.ffffff'; date() gives 'YYYY-MM-DD'.
    return func.date(UsageLedgerRow.created_at)


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


class UsageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add_many(self, records: Sequence[UsageRecord]) -> None:
        """Insert every record in one statement (multi-row VALUES, in pages the driver accepts).

        A Core insert on the table, not the ORM bulk path: no unit-of-work bookkeeping per row, which
        makes a 500-row batch about a quarter cheaper on the event loop. A record whose ``entry_id``
        is already in the table is skipped: a journal replayed after a crash may hold rows the
        database committed just before it (see services/usage_journal.py).
        """
        if records:
            dialect = self._session.get_bind().dialect.name
            upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            statement = upsert(USAGE_TABLE).on_conflict_do_nothing(index_elements=["entry_id"])
            await self._session.execute(statement, [_values(record) for record in records])

    async def report(
        self,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        api_key: str | None = None,
        model: str | None = None,
        group_by: UsageGroupBy = "model",
    ) -> list[UsageRow]:
        """Totals per group over ``start <= created_at < end``, aggregated by the database."""
        row = UsageLedgerRow
        keys: list[ColumnElement[Any]] = []
        if "day" in group_by:
            keys.append(_day_bucket(self._session.get_bind().dialect.name).label("day"))
        if "model" in group_by:
            keys.append(row.model.label("model"))
        query = select(
            *keys,
            func.count().label("requests"),
            func.sum(row.prompt_tokens).label("prompt_tokens"),
            func.sum(row.completion_tokens).label("completion_tokens"),
            func.sum(row.cost_usd).label("cost_usd"),
            func.sum(case((row.cache_status.in_(CACHE_HITS), 1), else_=0)).label("cache_hits"),
            func.sum(case((row.status == "error", 1), else_=0)).label("errors"),
        )
        if start is not None:
            query = query.where(row.created_at >= start)
        if end is not None:
            query = query.where(row.created_at < end)
        if api_key is not None:
            query = query.where(row.api_key == api_key)
        if model is not None:
            query = query.where(row.model == model)
        query = query.group_by(*keys).order_by(*keys)
        result = await self._session.execute(query)
        return [
            UsageRow(
                model=found.model if "model" in group_by else None,
                day=_as_date(found.day) if "day" in group_by else None,
                requests=found.requests,
                prompt_tokens=int(found.prompt_tokens),
                completion_tokens=int(found.completion_tokens),
                cost_usd=found.cost_usd,
                cache_hits=int(found.cache_hits),
                errors=int(found.errors),
            )
            for found in result
        ]


# What ApiKeyRepository.update may change: never the id, the hash or the timestamps it keeps itself.
API_KEY_MUTABLE_FIELDS = frozenset(
    {
        "name",
        "role",
        "models",
        "rpm",
        "tpm",
        "max_parallel",
        "max_budget_usd",
        "budget_period",
        "priority",
        "guardrails",
        "metadata",
        "expires_at",
    }
)


class ApiKeyRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, row: ApiKeyRow) -> ApiKeyRow:
        self._session.add(row)
        await self._session.flush()
        return row

    async def get(self, key_id: str) -> ApiKeyRow | None:
        return await self._session.get(ApiKeyRow, key_id)

    async def by_hash(self, key_hash: str) -> ApiKeyRow | None:
        return await self._session.scalar(select(ApiKeyRow).where(ApiKeyRow.key_hash == key_hash))

    async def list_all(self) -> list[ApiKeyRow]:
        """Every key, revoked ones included, oldest first."""
        result = await self._session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.id))
        return list(result)

    async def update(self, key_id: str, changes: dict[str, Any]) -> ApiKeyRow | None:
        """Apply ``changes`` (field → value; ``metadata`` is the row's ``metadata_``); None if no such key."""
        unknown = set(changes) - API_KEY_MUTABLE_FIELDS
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        row = await self.get(key_id)
        if row is None:
            return None
        for name, value in changes.items():
            setattr(row, "metadata_" if name == "metadata" else name, value)
        row.updated_at = utcnow()
        await self._session.flush()
        return row

    async def revoke(self, key_id: str) -> ApiKeyRow | None:
        """Mark the key revoked (keeping the first revocation time if it already was); None if no such key."""
        row = await self.get(key_id)
        if row is None:
            return None
        if row.revoked_at is None:
            row.revoked_at = row.updated_at = utcnow()
            await self._session.flush()
        return row
