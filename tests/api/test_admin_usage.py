"""GET /admin/usage on the real app: what operators see of recorded calls, to the fraction of a cent."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from llmserve.api.deps import Services
from llmserve.app import create_app
from llmserve.config import load_settings
from llmserve.services.usage import UsageLedger, UsageRecord

MARCH_1 = datetime(2024, 3, 1, 10, tzinfo=UTC)
MARCH_2 = datetime(2024, 3, 2, 10, tzinfo=UTC)


@dataclass
class UsageApp:
    app: FastAPI
    client: TestClient
    ledger: UsageLedger

    def record(self, api_key: str, model: str, at: datetime, cost: str, cache_status: str = "miss") -> None:
        record = UsageRecord(
            request_id="req",
            model=model,
            deployment=f"{model}-1",
            provider="openai",
            prompt_tokens=1234,
            completion_tokens=567,
            cost_usd=Decimal(cost),
            latency_ms=20.0,
            api_key=api_key,
            cache_status=cache_status,  # type: ignore[arg-type]
            created_at=at,
        )
        assert self.client.portal is not None
        self.client.portal.call(self.ledger.record, record)  # on the app's event loop


@pytest.fixture(scope="module")
def usage_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UsageApp]:
    data_dir: Path = tmp_path_factory.mktemp("usage-api")
    settings = load_settings(data_dir=str(data_dir))
    app = create_app(settings)
    with TestClient(app) as client:
        assert client.portal is not None
        services: Services = app.state.services
        ledger = services.usage
        if ledger is None:  # a lifespan that does not build one yet: build it as the lifespan would
            ledger = UsageLedger(services.database, settings.usage)
            client.portal.call(ledger.start)
            app.state.services = replace(services, usage=ledger)
            yield UsageApp(app, client, ledger)
            client.portal.call(ledger.close)
        else:
            yield UsageApp(app, client, ledger)


def test_report_per_model_with_exact_costs(usage_app: UsageApp) -> None:
    for _ in range(3):
        usage_app.record("key-exact", "gpt-mini", MARCH_1, "0.0005253")
    usage_app.record("key-exact", "claude", MARCH_1, "0.1", cache_status="semantic-hit")
    # No flush and a 1 s writer interval: the report must still include the calls just answered.
    response = usage_app.client.get("/admin/usage", params={"api_key": "key-exact"})
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    assert body["data"] == [
        {
            "model": "claude",
            "requests": 1,
            "prompt_tokens": 1234,
            "completion_tokens": 567,
            "cost_usd": 0.1,
            "cost_usd_exact": "0.1000000000",
            "cache_hits": 1,
            "errors": 0,
        },
        {
            "model": "gpt-mini",
            "requests": 3,
            "prompt_tokens": 3702,
            "completion_tokens": 1701,
            "cost_usd": 0.0015759,
            "cost_usd_exact": "0.0015759000",
            "cache_hits": 0,
            "errors": 0,
        },
    ]


def test_report_per_model_and_day_within_a_time_range(usage_app: UsageApp) -> None:
    usage_app.record("key-days", "gpt-mini", MARCH_1, "0.01")
    usage_app.record("key-days", "gpt-mini", MARCH_2, "0.02")
    usage_app.record("key-days", "gpt-mini", datetime(2024, 3, 3, tzinfo=UTC), "0.04")
    response = usage_app.client.get(
        "/admin/usage",
        params={
            "api_key": "key-days",
            "group_by": "model,day",
            "start": "2024-03-01T00:00:00Z",
            "end": "2024-03-03T00:00:00+00:00",
        },
    )
    assert response.status_code == 200
    rows = [(r["day"], r["model"], r["cost_usd_exact"]) for r in response.json()["data"]]
    assert rows == [("2024-03-01", "gpt-mini", "0.0100000000"), ("2024-03-02", "gpt-mini", "0.0200000000")]


def test_report_per_day_filtered_by_model(usage_app: UsageApp) -> None:
    usage_app.record("key-model", "only-this", MARCH_2, "0.5")
    usage_app.record("key-model", "not-this", MARCH_2, "0.7")
    response = usage_app.client.get(
        "/admin/usage", params={"api_key": "key-model", "model": "only-this", "group_by": "day"}
    )
    assert response.status_code == 200
    [row] = response.json()["data"]
    assert "model" not in row
    assert (row["day"], row["requests"], row["cost_usd"]) == ("2024-03-02", 1, 0.5)


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"start": "yesterday"}, "start"),
        # A number is not ISO 8601 text (pydantic alone reads it as Unix seconds; found by tests/fuzz).
        ({"start": "0.5"}, "start"),
        ({"end": "1700000000"}, "end"),
        ({"end": "2024-13-45"}, "end"),
        ({"group_by": "hour"}, "group_by"),
        ({"start": "2024-03-02T00:00:00Z", "end": "2024-03-01T00:00:00Z"}, "start"),
    ],
)
def test_bad_parameters_are_400(usage_app: UsageApp, params: dict[str, str], param: str) -> None:
    response = usage_app.client.get("/admin/usage", params=params)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_unknown_key_reports_nothing(usage_app: UsageApp) -> None:
    response = usage_app.client.get("/admin/usage", params={"api_key": "nobody"})
    assert response.json() == {"object": "list", "data": []}


def test_a_server_without_a_ledger_says_so(usage_app: UsageApp) -> None:
    services: Services = usage_app.app.state.services
    usage_app.app.state.services = replace(services, usage=None)
    try:
        response = usage_app.client.get("/admin/usage")
    finally:
        usage_app.app.state.services = services
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "usage_disabled"
