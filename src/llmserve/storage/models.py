"""SQLAlchemy models for persisted state. Schema changes go through Alembic migrations only."""

from __future__ import annotations

import builtins
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

# Deterministic constraint names, so migrations can drop/alter them by name on every backend
# (SQLite batch mode and PostgreSQL both need the name).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# A client may name its own conversation (validated as [A-Za-z0-9_-]{1,64}); ids we mint are 32 hex.
CONVERSATION_ID_LENGTH = 64
MESSAGE_ID_LENGTH = 32
# The request id middleware accepts client-supplied ids up to this length.
REQUEST_ID_LENGTH = 128
NAME_LENGTH = 255
PROVIDER_LENGTH = 64
ENTRY_ID_LENGTH = 32  # a usage row's id: 32 hex
KEY_ID_LENGTH = 32
KEY_HASH_LENGTH = 64  # sha256, hex
KEY_PREFIX_LENGTH = 16


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    PostgreSQL stores ``timestamptz`` natively; SQLite has no time zones and hands back naive values,
    so values are normalised to UTC on the way in and tagged as UTC on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column; pass an aware datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Money: 10 integer and 10 fractional digits: per-token prices of a millionth of a cent add up exactly.
MONEY_PRECISION = 20
MONEY_SCALE = 10
_MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_SCALE)


class ExactDecimal(TypeDecorator[Decimal]):
    """``Numeric(20, 10)`` that is exact on every backend, SUM() included.

    PostgreSQL has a true ``numeric``. SQLite has none: SQLAlchemy would store a REAL and round, so
    there the value is kept as a count of 1e-10 units in an INTEGER, whose SUM() is exact 64-bit
    arithmetic (good to about 922 million USD per sum). Values are rounded half-even to 10 places on
    the way in, as PostgreSQL's ``numeric(20, 10)`` does.
    """

    impl = Numeric(MONEY_PRECISION, MONEY_SCALE, asdecimal=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(MONEY_PRECISION, MONEY_SCALE, asdecimal=True))

    def process_bind_param(self, value: Decimal | int | None, dialect: Dialect) -> Decimal | int | None:
        if value is None:
            return None
        if isinstance(value, int):
            value = Decimal(value)
        elif not isinstance(value, Decimal):
            raise TypeError(f"money must be a Decimal, not {type(value).__name__} (floats are not exact)")
        value = value.quantize(_MONEY_QUANTUM)
        return int(value.scaleb(MONEY_SCALE)) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return Decimal(int(value)).scaleb(-MONEY_SCALE)
        return Decimal(value).quantize(_MONEY_QUANTUM)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ConversationRow(Base):
    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(CONVERSATION_ID_LENGTH), primary_key=True)
    # The tenant that started it (request_context.RequestContext.tenant): only it may read or extend it.
    owner: Mapped[str] = mapped_column(String(NAME_LENGTH), default="anonymous", server_default="anonymous")
    title: Mapped[str | None] = mapped_column(String(255))
    model: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def __repr__(self) -> str:
        return f"ConversationRow(id={self.id!r}, model={self.model!r})"


class MessageRow(Base):
    __tablename__ = "messages"
    # The unique (conversation_id, seq) index also serves every per-conversation lookup and the
    # max(seq) probe, so conversation_id needs no index of its own.
    __table_args__ = (UniqueConstraint("conversation_id", "seq"),)

    id: Mapped[str] = mapped_column(String(MESSAGE_ID_LENGTH), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(
        String(CONVERSATION_ID_LENGTH), ForeignKey("conversations.id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(32))
    content: Mapped[str] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(255))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    def __repr__(self) -> str:
        return f"MessageRow(id={self.id!r}, conversation_id={self.conversation_id!r}, seq={self.seq})"


class UsageLedgerRow(Base):
    """One upstream call (or cache answer): who asked, which deployment answered, tokens and exact cost."""

    __tablename__ = "usage_ledger"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    request_id: Mapped[str] = mapped_column(String(REQUEST_ID_LENGTH))
    api_key: Mapped[str | None] = mapped_column(String(NAME_LENGTH), index=True)
    model: Mapped[str] = mapped_column(String(NAME_LENGTH), index=True)
    deployment: Mapped[str] = mapped_column(String(NAME_LENGTH))
    provider: Mapped[str] = mapped_column(String(PROVIDER_LENGTH))
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    cost_usd: Mapped[Decimal] = mapped_column(ExactDecimal())
    cache_status: Mapped[str] = mapped_column(String(16))
    latency_ms: Mapped[float] = mapped_column(Float)
    tokens_estimated: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16))
    # The row's identity from the moment it is recorded (services/usage_journal.py): a row recovered
    # from a journal after a crash, or retried after a commit whose answer was lost, is inserted once.
    # NULL on rows written before revision 0006.
    entry_id: Mapped[str | None] = mapped_column(String(ENTRY_ID_LENGTH), index=True, unique=True)

    def __repr__(self) -> str:
        return f"UsageLedgerRow(id={self.id!r}, model={self.model!r}, cost_usd={self.cost_usd!r})"


class ApiKeyRow(Base):
    """An API key. Only the sha256 of the secret is stored; ``key_prefix`` lets people tell keys apart.

    Limits left NULL fall back to ``limits.per_key``; ``models`` NULL means every model group.
    """

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(KEY_ID_LENGTH), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(KEY_HASH_LENGTH), unique=True, index=True)
    key_prefix: Mapped[str] = mapped_column(String(KEY_PREFIX_LENGTH))
    name: Mapped[str | None] = mapped_column(String(NAME_LENGTH))
    role: Mapped[str] = mapped_column(String(16))
    models: Mapped[list[str] | None] = mapped_column(JSON)
    rpm: Mapped[int | None] = mapped_column(Integer)
    tpm: Mapped[int | None] = mapped_column(Integer)
    max_parallel: Mapped[int | None] = mapped_column(Integer)
    max_budget_usd: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    budget_period: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int | None] = mapped_column(Integer)
    guardrails: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # ``metadata`` is taken by the declarative base; the column keeps the plain name.
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:  # never the hash
        return f"ApiKeyRow(id={self.id!r}, name={self.name!r}, role={self.role!r})"


# Ids we mint: a prefix and 24-32 hex digits; batch lines: the batch id, a dot and the line number.
JOB_ID_LENGTH = 64
CUSTOM_ID_LENGTH = 512


class FileRow(Base):
    """An uploaded batch input, or a batch's output / error file. The bytes live in the database (every
    replica and worker sees them without shared disk), as ``FileChunkRow`` slices."""

    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(JOB_ID_LENGTH), primary_key=True)
    owner: Mapped[str] = mapped_column(String(NAME_LENGTH), index=True)
    purpose: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(NAME_LENGTH))
    bytes: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


FILE_CHUNK_BYTES = 1024 * 1024


class FileChunkRow(Base):
    """``FILE_CHUNK_BYTES`` of a file's content (the last one shorter), in order of ``seq``.

    Why slices and not one BLOB: SQLite's substr() over a BLOB reads the whole value, so streaming a
    64 MB file 1 MB at a time read 64 MB per slice (12 parallel downloads: +700 MB); a slice row is
    read alone, on SQLite and PostgreSQL alike.
    """

    __tablename__ = "file_chunks"

    file_id: Mapped[str] = mapped_column(
        String(JOB_ID_LENGTH), ForeignKey("files.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[builtins.bytes] = mapped_column(LargeBinary)


class BatchRow(Base):
    """An OpenAI-style batch: its lines are JobRows with ``batch_id`` set."""

    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(JOB_ID_LENGTH), primary_key=True)
    owner: Mapped[str] = mapped_column(String(NAME_LENGTH), index=True)
    key_id: Mapped[str | None] = mapped_column(String(KEY_ID_LENGTH))
    endpoint: Mapped[str] = mapped_column(String(64))
    input_file_id: Mapped[str] = mapped_column(String(JOB_ID_LENGTH))
    completion_window: Mapped[str] = mapped_column(String(16))
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON)
    status: Mapped[str] = mapped_column(String(16))
    errors: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    total: Mapped[int] = mapped_column(Integer, default=0)
    output_file_id: Mapped[str | None] = mapped_column(String(JOB_ID_LENGTH))
    error_file_id: Mapped[str | None] = mapped_column(String(JOB_ID_LENGTH))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    in_progress_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finalizing_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelling_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class JobRow(Base):
    """One unit of queued work: an async job, one batch line, or a batch's prepare / finalize step.

    The row is the source of truth; a broker only carries its id. A worker claims a row by setting
    ``lease_owner`` and ``lease_until`` and keeps renewing the lease while it runs; a row whose lease
    ran out (its worker died) is claimed again. Results are written only while the row is unfinished,
    and (batch_id, custom_id) is unique, so a redelivered line can never produce a second answer.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("batch_id", "custom_id"),
        Index("ix_jobs_batch_id_status", "batch_id", "status"),
        Index("ix_jobs_status_priority", "status", "priority", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(JOB_ID_LENGTH), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    batch_id: Mapped[str | None] = mapped_column(String(JOB_ID_LENGTH))
    line: Mapped[int | None] = mapped_column(Integer)
    custom_id: Mapped[str | None] = mapped_column(String(CUSTOM_ID_LENGTH))
    owner: Mapped[str] = mapped_column(String(NAME_LENGTH), index=True)
    key_id: Mapped[str | None] = mapped_column(String(KEY_ID_LENGTH))
    endpoint: Mapped[str] = mapped_column(String(64))
    body: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[Any] = mapped_column(JSON, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    request_id: Mapped[str | None] = mapped_column(String(REQUEST_ID_LENGTH))
    callback_url: Mapped[str | None] = mapped_column(Text)
    callback_state: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


RESPONSE_ID_LENGTH = 64  # "resp_" + 32 hex; room for a native upstream's longer ids


class ResponseRow(Base):
    """A stored response of the Responses API (``storage/response_rows.py`` has its repository)."""

    __tablename__ = "responses"

    id: Mapped[str] = mapped_column(String(RESPONSE_ID_LENGTH), primary_key=True)
    owner: Mapped[str] = mapped_column(String(NAME_LENGTH), index=True)
    status: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(NAME_LENGTH))
    previous_response_id: Mapped[str | None] = mapped_column(String(RESPONSE_ID_LENGTH), index=True)
    # The request as the surface normalised it: input items (with their ids), instructions, options.
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    output: Mapped[list[Any] | None] = mapped_column(JSON)
    usage: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    incomplete_reason: Mapped[str | None] = mapped_column(String(32))
    job_id: Mapped[str | None] = mapped_column(String(64), index=True)  # a background response's job
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ResponseItemRow(Base):
    """Where a stored item lives: the tenant's item id → the response that holds it (in its input or
    output). An ``item_reference`` input names an earlier item by id alone (the Vercel AI SDK sends
    each earlier assistant turn so), and this finds it without reading every response."""

    __tablename__ = "response_items"

    owner: Mapped[str] = mapped_column(String(NAME_LENGTH), primary_key=True)
    item_id: Mapped[str] = mapped_column(String(RESPONSE_ID_LENGTH), primary_key=True)
    response_id: Mapped[str] = mapped_column(
        String(RESPONSE_ID_LENGTH), ForeignKey("responses.id", ondelete="CASCADE"), index=True
    )
