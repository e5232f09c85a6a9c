"""What a serving function hands back to its route: a JSON body or a stream, with headers.

Bodies are plain dicts encoded once with orjson, streams are bytes: this runs on the hot path, once
per request and once per token. The response models in ``schemas/`` document the same shapes for
OpenAPI; tests check that what is served validates against them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.responses import Response, StreamingResponse

from llmserve.api.sse import sse_response
from llmserve.services.chat import ChatResult, ChatStream, gateway_overhead_ms
from llmserve.types import Usage


@dataclass(frozen=True)
class JsonReply:
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200

    def response(self) -> Response:
        return Response(
            orjson.dumps(self.body), self.status, media_type="application/json", headers=self.headers
        )


@dataclass(frozen=True)
class StreamReply:
    events: AsyncIterator[bytes]  # SSE-framed
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> StreamingResponse:
        return sse_response(self.events, self.headers)


def usage_dict(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def route_headers(answer: ChatResult | ChatStream) -> dict[str, str]:
    """Which deployment answered, after how many calls, what llmserve itself added (ms), and whether
    the cache answered."""
    headers = {
        "x-llmserve-deployment": answer.route.deployment,
        "x-llmserve-attempts": str(answer.route.attempts),
        "x-llmserve-overhead-ms": f"{gateway_overhead_ms(answer.route, answer.started):.2f}",
        "x-llmserve-cache": answer.cache_status,
    }
    if answer.cache_similarity is not None:
        headers["x-llmserve-cache-similarity"] = f"{answer.cache_similarity:.4f}"
    headers.update(answer.headers)  # x-ratelimit-* when the caller has limits, the cost of an answer
    return headers


def answer_headers(result: ChatResult) -> dict[str, str]:
    headers = route_headers(result)
    if result.conversation_id:
        headers["x-llmserve-conversation-id"] = result.conversation_id
    return headers


def stream_headers(stream: ChatStream) -> dict[str, str]:
    headers = {
        "x-llmserve-model": stream.model,
        "x-llmserve-message-id": stream.message_id,
        **route_headers(stream),
    }
    if stream.conversation_id:
        headers["x-llmserve-conversation-id"] = stream.conversation_id
    return headers
