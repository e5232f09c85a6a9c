"""A minimal streaming client for ``llmserve chat`` (users' own code should use the openai SDK)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson


class ChatClientError(Exception):
    pass


def stream_chat(base_url: str, body: dict[str, Any], api_key: str | None = None) -> Iterator[str]:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    url = base_url.rstrip("/") + "/v1/chat/completions"
    try:
        with httpx.stream(
            "POST", url, json=body, headers=headers, timeout=httpx.Timeout(10, read=300)
        ) as response:
            if response.status_code != 200:
                response.read()
                raise ChatClientError(f"HTTP {response.status_code}: {_error_message(response.content)}")
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[len("data: ") :]
                if data == "[DONE]":
                    return
                event = orjson.loads(data)
                if "error" in event:
                    raise ChatClientError(event["error"].get("message", "stream failed"))
                for choice in event.get("choices", []):
                    if piece := choice.get("delta", {}).get("content"):
                        yield piece
    except httpx.TransportError as exc:
        raise ChatClientError(f"cannot reach {base_url}: {exc}") from exc


def _error_message(content: bytes) -> str:
    try:
        return str(orjson.loads(content)["error"]["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return content.decode(errors="replace")[:200]
