"""API keys: mint them, keep only their hashes, and turn a presented secret into the caller's Principal.

A secret is ``sk-llm-`` + 32 random bytes (``secrets.token_urlsafe``). It is stored as its sha256: a
slow password hash (bcrypt, scrypt) exists to make guessing low-entropy passwords expensive, but
guessing 256 random bits is hopeless at any hash speed, and a fast hash lets every request find its
key with one indexed lookup instead of spending milliseconds of CPU per call.

Each process keeps recently seen keys for ``KEY_CACHE_TTL_S`` seconds, so a replica notices a key
revoked or changed elsewhere within that time; a change made through this service takes effect here
at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from llmserve.config import LimitRule, Settings
from llmserve.errors import Forbidden, InvalidRequest, NotFound, Unauthorized
from llmserve.guardrails import validate_overrides
from llmserve.principal import BudgetPeriod, Principal, Role
from llmserve.schemas.keys import KeyFieldRules, checked_key_field
from llmserve.storage.db import Database
from llmserve.storage.models import ApiKeyRow, utcnow
from llmserve.storage.repositories import API_KEY_MUTABLE_FIELDS, ApiKeyRepository, new_id

KEY_PREFIX = "sk-llm-"
SHOWN_PREFIX_CHARS = 12  # "sk-llm-" and five random characters: enough to tell keys apart in a list
KEY_CACHE_TTL_S = 5.0
KEY_CACHE_MAX_ENTRIES = 10_000
# Longer than any key we mint by far; longer input is refused before it is hashed.
MAX_SECRET_CHARS = 512
MASTER_PRINCIPAL = Principal(name="master", role="admin", is_master=True)


def generate_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def model_allowed(principal: Principal, group: str) -> bool:
    return principal.models is None or group in principal.models


def ensure_model_allowed(principal: Principal, group: str) -> None:
    """Raise Forbidden (403) unless the caller's key may use the model group ``group``."""
    if not model_allowed(principal, group):
        raise Forbidden(
            f"This API key may not use the model '{group}'", param="model", code="model_not_allowed"
        )


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """A key as operators see it: everything but the secret and its hash."""

    id: str
    name: str | None
    key_prefix: str
    role: Role
    models: tuple[str, ...] | None
    rpm: int | None
    tpm: int | None
    max_parallel: int | None
    max_budget_usd: Decimal | None
    budget_period: BudgetPeriod
    priority: int | None
    guardrails: dict[str, Any]
    expires_at: datetime | None
    created_at: datetime
    revoked_at: datetime | None
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: ApiKeyRow) -> ApiKeyInfo:
        return cls(
            id=row.id,
            name=row.name,
            key_prefix=row.key_prefix,
            role=row.role,  # type: ignore[arg-type]  # written only through _validated()
            models=None if row.models is None else tuple(row.models),
            rpm=row.rpm,
            tpm=row.tpm,
            max_parallel=row.max_parallel,
            max_budget_usd=row.max_budget_usd,
            budget_period=row.budget_period,  # type: ignore[arg-type]
            priority=row.priority,
            guardrails=dict(row.guardrails or {}),
            expires_at=row.expires_at,
            created_at=row.created_at,
            revoked_at=row.revoked_at,
            metadata=dict(row.metadata_ or {}),
        )

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A new key: ``secret`` exists only here, once; the database keeps its hash."""

    info: ApiKeyInfo
    secret: str


@dataclass(frozen=True, slots=True)
class _Cached:
    until: float  # clock() time the entry stops being trusted
    key: ApiKeyInfo | None  # None: no such key (remembered too: a client stuck on a bad key costs no query)
    principal: Principal | None


class KeyService:
    """Create, list, change and revoke keys; authenticate a presented secret (master key or stored key)."""

    def __init__(
        self,
        database: Database,
        settings: Settings,
        *,
        cache_ttl: float = KEY_CACHE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = database
        self._settings = settings
        self._cache_ttl = cache_ttl
        self._clock = clock
        # Keys found and hashes not found, apart: a flood of made-up keys must not push real ones out.
        self._found: dict[str, _Cached] = {}
        self._missing: dict[str, _Cached] = {}
        # Bumped by every change made here; a lookup that raced one does not cache its stale answer.
        self._generation = 0
        master = settings.master_key
        self._master_hash = hash_secret(master.get_secret_value()) if master is not None else None
        self._field_rules = KeyFieldRules(
            model_groups=frozenset(entry.name for entry in settings.models),
            guardrails=settings.guardrails,
            check_guardrail_overrides=validate_overrides,
        )

    @property
    def enabled(self) -> bool:
        """Authentication is on exactly when a master key is configured."""
        return self._master_hash is not None

    async def create(
        self,
        *,
        name: str | None = None,
        role: str = "user",
        models: Iterable[str] | None = None,
        rpm: int | None = None,
        tpm: int | None = None,
        max_parallel: int | None = None,
        max_budget_usd: Decimal | int | str | None = None,
        budget_period: str = "monthly",
        priority: int | None = None,
        guardrails: Mapping[str, Any] | None = None,
        expires_at: datetime | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> CreatedKey:
        fields = self._validated(
            {
                "name": name,
                "role": role,
                "models": models,
                "rpm": rpm,
                "tpm": tpm,
                "max_parallel": max_parallel,
                "max_budget_usd": max_budget_usd,
                "budget_period": budget_period,
                "priority": priority,
                "guardrails": guardrails,
                "expires_at": expires_at,
                "metadata": metadata,
            }
        )
        secret = generate_secret()
        now = utcnow()
        row = ApiKeyRow(
            id=new_id(),
            key_hash=hash_secret(secret),
            key_prefix=secret[:SHOWN_PREFIX_CHARS],
            metadata_=fields.pop("metadata"),
            created_at=now,
            updated_at=now,
            **fields,
        )
        async with self._db.session() as session, session.begin():
            await ApiKeyRepository(session).add(row)
        self._forget(row.key_hash)
        return CreatedKey(info=ApiKeyInfo.from_row(row), secret=secret)

    async def list(self) -> list[ApiKeyInfo]:
        """Every key, revoked ones included, oldest first."""
        async with self._db.session(readonly=True) as session, session.begin():
            rows = await ApiKeyRepository(session).list_all()
        return [ApiKeyInfo.from_row(row) for row in rows]

    async def get(self, key_id: str) -> ApiKeyInfo:
        async with self._db.session(readonly=True) as session, session.begin():
            row = await ApiKeyRepository(session).get(key_id)
        if row is None:
            raise _key_not_found(key_id)
        return ApiKeyInfo.from_row(row)

    async def update(self, key_id: str, changes: Mapping[str, Any]) -> ApiKeyInfo:
        """Change the named fields only; a None value clears an optional one (e.g. ``rpm``)."""
        unknown = set(changes) - API_KEY_MUTABLE_FIELDS
        if unknown:
            raise InvalidRequest(f"Unknown key field: {sorted(unknown)[0]}", param=sorted(unknown)[0])
        fields = self._validated(changes)
        async with self._db.session() as session, session.begin():
            row = await ApiKeyRepository(session).update(key_id, fields)
        if row is None:
            raise _key_not_found(key_id)
        self._forget(row.key_hash)
        return ApiKeyInfo.from_row(row)

    async def revoke(self, key_id: str) -> ApiKeyInfo:
        """Revoke the key for good; requests with it get 401 from now on (other replicas: within the TTL)."""
        async with self._db.session() as session, session.begin():
            row = await ApiKeyRepository(session).revoke(key_id)
        if row is None:
            raise _key_not_found(key_id)
        self._forget(row.key_hash)
        return ApiKeyInfo.from_row(row)

    async def authenticate(self, secret: str) -> Principal:
        """The Principal for a presented secret; Unauthorized when it is unknown, revoked or expired."""
        if not secret or len(secret) > MAX_SECRET_CHARS:
            raise Unauthorized("Invalid API key")
        key_hash = hash_secret(secret)
        # Constant-time, so response timing reveals nothing about how much of a guess matched.
        if self._master_hash is not None and hmac.compare_digest(key_hash, self._master_hash):
            return MASTER_PRINCIPAL
        entry = await self._lookup(key_hash)
        if entry.key is None or entry.principal is None:
            raise Unauthorized("Invalid API key")
        if entry.key.revoked_at is not None:
            raise Unauthorized("This API key has been revoked")
        if entry.key.expired(utcnow()):
            raise Unauthorized("This API key has expired")
        return entry.principal

    async def principal_by_id(self, key_id: str) -> Principal:
        """The Principal a queued job runs as: its owner's key as it is now (revoked keys stop work)."""
        key = await self.get(key_id)
        if key.revoked_at is not None:
            raise Unauthorized("The API key that submitted this work has been revoked")
        if key.expired(utcnow()):
            raise Unauthorized("The API key that submitted this work has expired")
        return self.principal_for(key)

    def principal_for(self, key: ApiKeyInfo) -> Principal:
        """The key as the pipeline sees it: its own limits over ``limits.per_key``."""
        defaults = self._settings.limits.per_key
        return Principal(
            key_id=key.id,
            name=key.name or key.key_prefix,
            role=key.role,
            models=key.models,
            limits=LimitRule(
                rpm=key.rpm if key.rpm is not None else defaults.rpm,
                tpm=key.tpm if key.tpm is not None else defaults.tpm,
                max_parallel=key.max_parallel if key.max_parallel is not None else defaults.max_parallel,
            ),
            max_budget_usd=key.max_budget_usd,
            budget_period=key.budget_period,
            priority=key.priority,
            guardrails=dict(key.guardrails),
        )

    async def _lookup(self, key_hash: str) -> _Cached:
        now = self._clock()
        cached = self._found.get(key_hash) or self._missing.get(key_hash)
        if cached is not None and cached.until > now:
            return cached
        generation = self._generation
        async with self._db.session(readonly=True) as session, session.begin():
            row = await ApiKeyRepository(session).by_hash(key_hash)
        # The database compared hashes with '='; compare again in constant time before trusting it.
        if row is not None and not hmac.compare_digest(row.key_hash, key_hash):
            row = None
        key = None if row is None else ApiKeyInfo.from_row(row)
        entry = _Cached(
            until=now + self._cache_ttl, key=key, principal=None if key is None else self.principal_for(key)
        )
        if generation == self._generation:  # no change was made here while we read
            self._remember(key_hash, entry)
        return entry

    def _remember(self, key_hash: str, entry: _Cached) -> None:
        self._found.pop(key_hash, None)
        self._missing.pop(key_hash, None)
        cache = self._missing if entry.key is None else self._found
        if len(cache) >= KEY_CACHE_MAX_ENTRIES:
            cache.pop(next(iter(cache)))  # bounded: the oldest entry (insertion order) goes
        cache[key_hash] = entry

    def _forget(self, key_hash: str) -> None:
        self._generation += 1
        self._found.pop(key_hash, None)
        self._missing.pop(key_hash, None)

    def _validated(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Check and normalise key fields (from the API, the CLI or code) in the order given, through the
        one schema (schemas.keys.KeyFields); InvalidRequest names the first field refused."""
        return {name: checked_key_field(name, value, self._field_rules) for name, value in fields.items()}


def _key_not_found(key_id: str) -> NotFound:
    return NotFound(f"API key '{key_id}' not found", param="key_id", code="key_not_found")
