"""``item_reference`` inputs name an earlier stored item by id alone: the Vercel AI SDK sends each
earlier assistant turn this way while ``store`` is on (its default), so its multi-turn chat loop got
a 400 until the references were resolved. Another tenant's item, or a deleted one, is not found."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from llmserve.app import create_app
from llmserve.config import load_settings

SAMPLING = {"temperature": 0, "max_output_tokens": 8}
OWNER = {"authorization": "Bearer sk-owner-token"}  # auth off: a bearer token is its own tenant
OTHER = {"authorization": "Bearer sk-other-token"}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data_dir: Path = tmp_path_factory.mktemp("item-reference")
    with TestClient(create_app(load_settings(data_dir=str(data_dir)))) as test_client:
        yield test_client


def _turn(client: TestClient, items: list[object], headers: dict[str, str]) -> dict[str, object]:
    response = client.post("/v1/responses", json={"input": items, **SAMPLING}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_a_referenced_earlier_answer_is_part_of_the_next_turns_context(client: TestClient) -> None:
    first = client.post("/v1/responses", json={"input": "Hello!", **SAMPLING}, headers=OWNER).json()
    answer_id = first["output"][0]["id"]
    question = {"role": "user", "content": "Hello!"}
    referenced = _turn(client, [question, {"type": "item_reference", "id": answer_id}, question], OWNER)
    spelled_out = _turn(client, [question, first["output"][0], question], OWNER)
    assert referenced["usage"] == spelled_out["usage"]  # the same context, token for token
    items = client.get(
        f"/v1/responses/{referenced['id']}/input_items", params={"order": "asc"}, headers=OWNER
    )
    assert items.json()["data"][1] == first["output"][0]  # stored as the item it named


def test_a_reference_to_another_tenants_or_a_deleted_item_is_not_found(client: TestClient) -> None:
    first = client.post("/v1/responses", json={"input": "Hi", **SAMPLING}, headers=OWNER).json()
    reference = [{"type": "item_reference", "id": first["output"][0]["id"]}]
    refused = client.post("/v1/responses", json={"input": reference}, headers=OTHER)
    assert refused.status_code == 400 and "not found" in refused.json()["error"]["message"]
    assert refused.json()["error"]["param"] == "input.0"
    assert client.delete(f"/v1/responses/{first['id']}", headers=OWNER).status_code == 200
    gone = client.post("/v1/responses", json={"input": reference}, headers=OWNER)
    assert gone.status_code == 400 and "not found" in gone.json()["error"]["message"]
