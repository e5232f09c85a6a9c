"""KeyService on SQLite and PostgreSQL: keys are hashed, authenticate to the right Principal, and stop
working the moment they are revoked here, or within the cache TTL when revoked by another replica."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from llmserve.config import Settings, load_settings
from llmserve.errors import Forbidden, InvalidRequest, NotFound, Unauthorized
from llmserve.principal import ANONYMOUS_PRINCIPAL, Principal
from llmserve.services import keys as keys_module
from llmserve.services.keys import (
    KEY_PREFIX,
    MASTER_PRINCIPAL,
    KeyService,
    ensure_model_allowed,
    hash_secret,
)
from llmserve.storage.db import Database
from llmserve.storage.models import ApiKeyRow

MASTER = "master-key-for-tests-0123456789"


class CountingDatabase(Database):
    """The real database, counting the sessions opened on it (one per key lookup that misses the cache)."""

    def __init__(self, real: Database) -> None:  # no super().__init__(): it shares the real engine
        self.real = real
        self.sessions = 0

    def session(self, *, readonly: bool = False) -> AsyncSession:
        self.sessions += 1
        return self.real.session(readonly=readonly)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_settings(**overrides: Any) -> Settings:
    fields: dict[str, Any] = {
        "master_key": MASTER,
        "models": [{"name": "tiny-chat", "model": "tiny-chat"}, {"name": "other", "model": "tiny-chat"}],
        **overrides,
    }
    return load_settings(**fields)


@pytest.fixture
def settings() -> Settings:
    return make_settings(limits={"per_key": {"rpm": 100, "tpm": 5000, "max_parallel": 4}})


@pytest.fixture
def keys(database: Database, settings: Settings) -> KeyService:
    return KeyService(database, settings)


async def test_a_new_key_authenticates_and_only_its_hash_is_stored(
    keys: KeyService, database: Database
) -> None:
    created = await keys.create(name="ci", models=["tiny-chat"], rpm=7, max_budget_usd="2.5")
    assert created.secret.startswith(KEY_PREFIX) and len(created.secret) >= len(KEY_PREFIX) + 43
    assert created.info.key_prefix == created.secret[:12]
    async with database.session(readonly=True) as session:
        stored = list(await session.scalars(select(ApiKeyRow)))
    assert [row.key_hash for row in stored] == [hash_secret(created.secret)]
    assert created.secret not in repr(stored[0].__dict__), "the secret itself is never stored"

    principal = await keys.authenticate(created.secret)
    assert principal.key_id == created.info.id and principal.tenant == created.info.id
    assert (principal.name, principal.role, principal.is_admin) == ("ci", "user", False)
    assert principal.models == ("tiny-chat",)
    assert principal.max_budget_usd == Decimal("2.5") and principal.budget_period == "monthly"


async def test_the_keys_own_limits_win_over_the_per_key_defaults(keys: KeyService) -> None:
    own = await keys.create(rpm=7, max_parallel=1)
    principal = await keys.authenticate(own.secret)
    assert (principal.limits.rpm, principal.limits.tpm, principal.limits.max_parallel) == (7, 5000, 1)
    plain = await keys.authenticate((await keys.create()).secret)
    assert (plain.limits.rpm, plain.limits.tpm, plain.limits.max_parallel) == (100, 5000, 4)


async def test_the_master_key_is_an_admin_without_a_key_id(keys: KeyService) -> None:
    principal = await keys.authenticate(MASTER)
    assert principal is MASTER_PRINCIPAL
    assert principal.is_master and principal.is_admin and principal.key_id is None
    assert principal.tenant == "master"
    assert keys.enabled


@pytest.mark.parametrize("secret", ["", "sk-llm-nope", MASTER + "x", MASTER[:-1], "x" * 10_000])
async def test_anything_else_is_unauthorized(keys: KeyService, secret: str) -> None:
    with pytest.raises(Unauthorized):
        await keys.authenticate(secret)


async def test_without_a_master_key_the_service_is_off_but_still_manages_keys(database: Database) -> None:
    keys = KeyService(database, load_settings())
    assert not keys.enabled
    created = await keys.create(name="made before auth was turned on")
    assert (await keys.authenticate(created.secret)).key_id == created.info.id


async def test_a_revoked_key_is_refused_at_once_on_this_replica(keys: KeyService) -> None:
    created = await keys.create()
    await keys.authenticate(created.secret)  # now cached
    revoked = await keys.revoke(created.info.id)
    assert revoked.revoked_at is not None
    with pytest.raises(Unauthorized, match="revoked"):
        await keys.authenticate(created.secret)
    again = await keys.revoke(created.info.id)
    assert again.revoked_at == revoked.revoked_at, "revoking twice keeps the first time"


async def test_another_replica_sees_a_revocation_within_the_cache_ttl(
    database: Database, settings: Settings
) -> None:
    clock = FakeClock()
    replica = KeyService(database, settings, clock=clock)
    admin = KeyService(database, settings)  # the replica that serves DELETE /admin/keys/{id}
    created = await admin.create()
    await replica.authenticate(created.secret)
    await admin.revoke(created.info.id)
    clock.now += 4.9
    assert (await replica.authenticate(created.secret)).key_id == created.info.id, "still cached"
    clock.now += 0.2
    with pytest.raises(Unauthorized):
        await replica.authenticate(created.secret)


async def test_an_update_elsewhere_reaches_this_replica_within_the_ttl(
    database: Database, settings: Settings
) -> None:
    clock = FakeClock()
    replica = KeyService(database, settings, clock=clock)
    admin = KeyService(database, settings)
    created = await admin.create(models=["tiny-chat"])
    assert (await replica.authenticate(created.secret)).models == ("tiny-chat",)
    await admin.update(created.info.id, {"models": None, "rpm": 9})
    clock.now += 5.1
    principal = await replica.authenticate(created.secret)
    assert principal.models is None and principal.limits.rpm == 9


async def test_a_key_unknown_a_moment_ago_works_once_created_here(keys: KeyService) -> None:
    with pytest.raises(Unauthorized):
        await keys.authenticate("sk-llm-not-yet")  # a miss is cached too
    created = await keys.create()
    assert (await keys.authenticate(created.secret)).key_id == created.info.id


async def test_a_cached_key_costs_no_query_even_under_a_flood_of_made_up_keys(
    database: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keys_module, "KEY_CACHE_MAX_ENTRIES", 3)
    counting = CountingDatabase(database)
    keys = KeyService(counting, settings, clock=FakeClock())
    created = await keys.create()
    await keys.authenticate(created.secret)
    looked_up = counting.sessions
    for attempt in range(10):
        with pytest.raises(Unauthorized):
            await keys.authenticate(f"sk-llm-made-up-{attempt}")
    assert counting.sessions == looked_up + 10, "each made-up key is looked up once"
    await keys.authenticate(created.secret)
    await keys.authenticate(created.secret)
    assert counting.sessions == looked_up + 10, "the real key is still cached"
    with pytest.raises(Unauthorized):
        await keys.authenticate("sk-llm-made-up-9")  # the latest miss is remembered
    assert counting.sessions == looked_up + 10


async def test_an_expired_key_is_refused(keys: KeyService) -> None:
    soon = datetime.now(UTC) + timedelta(hours=1)
    created = await keys.create(expires_at=soon)
    assert (await keys.authenticate(created.secret)).key_id == created.info.id
    past = datetime.now(UTC) - timedelta(seconds=1)
    updated = await keys.update(created.info.id, {"expires_at": past})
    assert updated.expires_at == past
    with pytest.raises(Unauthorized, match="expired"):
        await keys.authenticate(created.secret)


async def test_a_naive_expiry_is_taken_as_utc(keys: KeyService) -> None:
    created = await keys.create(expires_at=datetime(2031, 5, 6, 7, 8, 9))
    assert created.info.expires_at == datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)


async def test_list_get_and_update(keys: KeyService) -> None:
    first = await keys.create(name="first", metadata={"team": "a"})
    second = await keys.create(name="second", role="admin", guardrails={"pii_input": "mask"})
    listed = await keys.list()
    assert [key.id for key in listed] == [first.info.id, second.info.id]
    assert listed[1].role == "admin" and listed[1].guardrails == {"pii_input": "mask"}
    assert (await keys.get(first.info.id)).metadata == {"team": "a"}
    changed = await keys.update(first.info.id, {"name": None, "priority": 2, "budget_period": "daily"})
    assert (changed.name, changed.priority, changed.budget_period) == (None, 2, "daily")
    assert changed.metadata == {"team": "a"}, "fields not named stay as they were"
    admin = await keys.authenticate(second.secret)
    assert admin.is_admin and admin.guardrails == {"pii_input": "mask"}


async def test_unknown_ids_are_not_found(keys: KeyService) -> None:
    for call in (keys.get("nope"), keys.revoke("nope"), keys.update("nope", {"rpm": 1})):
        with pytest.raises(NotFound):
            await call


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"role": "root"}, "role"),
        ({"budget_period": "weekly"}, "budget_period"),
        ({"models": ["nope"]}, "models"),
        ({"models": []}, "models"),
        ({"models": "tiny-chat"}, "models"),
        ({"rpm": 0}, "rpm"),
        ({"tpm": -5}, "tpm"),
        ({"max_parallel": True}, "max_parallel"),
        ({"priority": 101}, "priority"),
        ({"max_budget_usd": "-1"}, "max_budget_usd"),
        ({"max_budget_usd": "lots"}, "max_budget_usd"),
        ({"guardrails": {"no_such_rule": 1}}, "guardrails.no_such_rule"),
        ({"guardrails": {"pii_input": "shout"}}, "guardrails.pii_input"),
        ({"name": "x" * 256}, "name"),
    ],
)
async def test_invalid_fields_are_refused_with_the_field_named(
    keys: KeyService, fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        await keys.create(**fields)
    assert refused.value.param == param
    assert await keys.list() == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"role": "root"}, "role must be one of: user, admin"),
        ({"models": ["nope"]}, "Unknown model group 'nope'; configured groups: other, tiny-chat"),
        ({"models": []}, "models must name at least one group (null: every group)"),
        ({"models": "tiny-chat"}, "models must be a list of model group names"),
        ({"rpm": "5"}, "rpm must be a positive whole number, at most 2147483647"),
        ({"priority": True}, "priority must be a whole number from 0 to 100"),
        ({"max_budget_usd": "lots"}, "max_budget_usd must be a number"),
        ({"max_budget_usd": "NaN"}, "max_budget_usd must be from 0 to 900000000"),
        (
            {"guardrails": {"pii_input": "shout"}},
            "Invalid guardrails.pii_input: Input should be 'off', 'mask' or 'block'",
        ),
        (
            {"guardrails": {"blocked_patterns": ["["]}},
            "Invalid guardrails: blocked_patterns[0] is not a valid regular expression: "
            "unterminated character set",
        ),
        ({"expires_at": "2031-01-01T00:00:00"}, "expires_at must be a date and time"),
        ({"metadata": ["a"]}, "metadata must be an object"),
    ],
)
async def test_refusals_say_what_is_wrong(keys: KeyService, fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        await keys.create(**fields)
    assert refused.value.message == message


async def test_values_from_code_are_taken_as_meant(keys: KeyService) -> None:
    created = await keys.create(
        models=("other", "tiny-chat", "other"),
        max_budget_usd="0.10",
        guardrails=MappingProxyType({"max_messages": "3"}),
        metadata=MappingProxyType({"team": "a"}),
    )
    info = created.info
    assert info.models == ("other", "tiny-chat"), "deduplicated, in order"
    assert str(info.max_budget_usd) == "0.10", "the amount as written"
    assert (info.guardrails, info.metadata) == ({"max_messages": 3}, {"team": "a"})


async def test_update_refuses_clearing_required_fields_and_unknown_ones(keys: KeyService) -> None:
    created = await keys.create()
    for changes in ({"role": None}, {"budget_period": None}, {"key_hash": "x"}, {"id": "y"}):
        with pytest.raises(InvalidRequest):
            await keys.update(created.info.id, changes)


def test_ensure_model_allowed() -> None:
    restricted = Principal(key_id="k", models=("tiny-chat",))
    ensure_model_allowed(restricted, "tiny-chat")
    with pytest.raises(Forbidden) as refused:
        ensure_model_allowed(restricted, "other")
    assert refused.value.status_code == 403 and refused.value.code == "model_not_allowed"
    for anyone in (ANONYMOUS_PRINCIPAL, MASTER_PRINCIPAL, Principal(key_id="k")):
        ensure_model_allowed(anyone, "other")
