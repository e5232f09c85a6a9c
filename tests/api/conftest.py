"""API tier: the real app (bundled model, SQLite in a temp dir) driven in-process by Starlette's client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from llmserve.app import create_app
from llmserve.config import load_settings


@pytest.fixture(scope="session")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app for the tier: loading the model once keeps the suite fast."""
    data_dir: Path = tmp_path_factory.mktemp("api-data")
    settings = load_settings(data_dir=str(data_dir), server={"max_body_bytes": 64 * 1024})
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def sse_events(body: str) -> list[str]:
    """The data payloads of an SSE body, in order; asserts the framing is exact."""
    assert body.endswith("\n\n"), "every SSE event ends with a blank line"
    events = [block for block in body.split("\n\n") if block]
    assert all(block.startswith("data: ") for block in events), events
    return [block[len("data: ") :] for block in events]


def user(content: str) -> dict[str, str]:
    return {"role": "user", "content": content}


def shape(value: Any) -> Any:
    """The keys and value types of a JSON document, recursively: what a client's parser depends on."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__
