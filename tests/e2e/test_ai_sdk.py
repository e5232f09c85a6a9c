"""The Vercel AI SDK (``ai`` 7 with ``@ai-sdk/openai`` 4, the current majors) against a live server:
its default OpenAI model, ``openai(model)``, speaks the Responses API, and ``generateText`` and
``streamText`` must work with only ``baseURL`` changed. What the script saw is checked against the
responses llmserve stored, which also proves the calls went to ``/v1/responses``."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.node_packages import node_packages, run_script
from tests.live_server import LiveServer

pytestmark = pytest.mark.e2e

# zod is the SDK's peer dependency; npm installs it with them.
AI_SDK = ("ai@7", "@ai-sdk/openai@4")


def test_generate_text_and_stream_text_with_the_default_openai_model(live_server: LiveServer) -> None:
    cache = node_packages("node-ai-sdk-7", AI_SDK)
    seen = run_script(cache, "ai_sdk_responses.mjs", f"{live_server.url}/v1", live_server.model)

    assert seen["text"] and seen["finishReason"] in ("stop", "length")
    assert seen["usage"]["inputTokens"] > 0 and seen["usage"]["outputTokens"] > 0
    assert seen["providerResponseId"] == seen["responseId"]
    assert seen["streamError"] is None
    assert seen["parts"][0] == "start" and seen["parts"][-1] == "finish"
    assert seen["parts"].count("text-delta") > 1  # streamed, not one final chunk
    # Greedy both times: the stream says what generateText said, and its deltas add up to it.
    assert seen["deltas"] == seen["streamedText"] == seen["text"]
    assert seen["streamedFinishReason"] == seen["finishReason"]
    assert seen["streamedUsage"]["outputTokens"] == seen["usage"]["outputTokens"]
    # Multi-turn the SDK's way: the earlier answer comes back as an item_reference (a 400 before
    # llmserve resolved references); the follow-up's prompt holds the whole earlier exchange.
    assert seen["followUpError"] is None, seen["followUpError"]
    assert seen["followUpText"] and seen["followUpInputTokens"] > seen["usage"]["inputTokens"]

    # The script's key: without keys configured a response is still owned by the token that made it.
    auth = {"authorization": "Bearer unused"}
    with httpx.Client(base_url=live_server.url, timeout=30, headers=auth) as http:
        for response_id, text in (
            (seen["responseId"], seen["text"]),
            (seen["streamedResponseId"], seen["streamedText"]),
        ):
            assert response_id.startswith("resp_")
            stored = http.get(f"/v1/responses/{response_id}")
            assert stored.status_code == 200, stored.text
            output = stored.json()["output"]
            assert output[0]["content"][0]["text"] == text
