"""Issue 14: every value KeyFields accepts round-trips through the database (SQLite and PostgreSQL);
what the database, Redis or the listing's encoder could not hold is refused before it is stored."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from llmserve.config import load_settings
from llmserve.errors import InvalidRequest
from llmserve.schemas.keys import BUDGET_MAX_USD, LIMIT_MAX, METADATA_MAX_BYTES, METADATA_MAX_DEPTH
from llmserve.services.keys import KeyService
from llmserve.storage.db import Database


def _nested(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


@pytest.fixture
def keys(database: Database) -> KeyService:
    return KeyService(database, load_settings(master_key="master-key-for-bounds-tests-0123456789"))


async def test_the_largest_accepted_values_round_trip(keys: KeyService) -> None:
    metadata = {"deep": _nested(METADATA_MAX_DEPTH - 1), "list": [[1, [2]]]}
    created = await keys.create(
        rpm=LIMIT_MAX,
        tpm=LIMIT_MAX,
        max_parallel=LIMIT_MAX,
        max_budget_usd=Decimal(BUDGET_MAX_USD),
        expires_at=datetime(9998, 12, 31, 23, 59, 59, tzinfo=UTC),
        metadata=metadata,
    )
    [listed] = await keys.list()
    assert listed == await keys.get(created.info.id)
    assert (listed.rpm, listed.tpm, listed.max_parallel) == (LIMIT_MAX,) * 3
    assert listed.max_budget_usd == Decimal(BUDGET_MAX_USD)
    assert listed.expires_at == datetime(9998, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert listed.metadata == metadata
    small = await keys.create(max_budget_usd="899999999.9999999999")
    assert (await keys.get(small.info.id)).max_budget_usd == Decimal("899999999.9999999999")


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"rpm": 2**70}, "rpm"),
        ({"rpm": LIMIT_MAX + 1}, "rpm"),
        ({"tpm": 2**63}, "tpm"),
        ({"max_parallel": LIMIT_MAX + 1}, "max_parallel"),
        ({"max_budget_usd": 999_999_999}, "max_budget_usd"),
        ({"max_budget_usd": "Infinity"}, "max_budget_usd"),
        ({"expires_at": datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)}, "expires_at"),
        ({"expires_at": datetime.fromisoformat("9999-12-31T23:59:59-05:00")}, "expires_at"),
        ({"metadata": _nested(METADATA_MAX_DEPTH + 1)}, "metadata"),
        ({"metadata": _nested(500)}, "metadata"),
        ({"metadata": {"list": [[[[[[[[[1]]]]]]]]]}}, "metadata"),
        ({"metadata": {"blob": "x" * METADATA_MAX_BYTES}}, "metadata"),
    ],
)
async def test_what_storage_cannot_hold_is_refused_before_it_is_stored(
    keys: KeyService, fields: dict[str, Any], param: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        await keys.create(**fields)
    assert refused.value.param == param
    assert await keys.list() == []
