"""Every non-streamed answer says what it cost (``x-llmserve-cost-usd``), the figure the ledger bills."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from llmserve.app import create_app
from llmserve.config import load_settings
from tests.upstreams.openai_app import openai_server
from tests.upstreams.server import UpstreamServer

INPUT_PER_1K = Decimal("0.5")
OUTPUT_PER_1K = Decimal("1.5")


@pytest.fixture(scope="module")
def upstream() -> Iterator[UpstreamServer]:
    with openai_server("priced") as server:
        yield server


@pytest.fixture(scope="module")
def client(upstream: UpstreamServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data_dir: Path = tmp_path_factory.mktemp("cost-header")
    priced = {
        "name": "priced",
        "provider": "openai",
        "api_base": f"{upstream.url}/v1",
        "model": "gpt-test",
        "pricing": {"input_per_1k": float(INPUT_PER_1K), "output_per_1k": float(OUTPUT_PER_1K)},
    }
    local = {"name": "tiny-chat", "provider": "local", "model": "tiny-chat"}
    settings = load_settings(data_dir=str(data_dir), models=[local, priced])
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_a_priced_answer_carries_its_exact_cost(client: TestClient) -> None:
    response = client.post(
        "/v1/chat/completions", json={"model": "priced", "messages": [{"role": "user", "content": "a b c"}]}
    )
    assert response.status_code == 200, response.text
    usage = response.json()["usage"]
    expected = (
        Decimal(usage["prompt_tokens"]) * INPUT_PER_1K + Decimal(usage["completion_tokens"]) * OUTPUT_PER_1K
    ) / 1000
    assert Decimal(response.headers["x-llmserve-cost-usd"]) == expected > 0


def test_a_local_answer_costs_nothing(client: TestClient) -> None:
    response = client.post(
        "/v1/chat/completions",
        json={"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
    )
    assert response.status_code == 200, response.text
    assert Decimal(response.headers["x-llmserve-cost-usd"]) == 0
