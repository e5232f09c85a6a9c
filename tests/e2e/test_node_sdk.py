"""The Node ``openai`` SDK (the major version users run, 6.x) against a live server: a streamed
Responses API call and a chained one. The package is installed once per machine into a cache
directory (not the repository); a machine without Node.js skips, CI fails."""

from __future__ import annotations

import pytest

from tests.e2e.node_packages import node_packages, run_script
from tests.live_server import LiveServer

pytestmark = pytest.mark.e2e

NODE_OPENAI = ("openai@6",)


def test_the_node_sdk_streams_a_response_and_continues_it(live_server: LiveServer) -> None:
    cache = node_packages("node-openai-6", NODE_OPENAI)
    seen = run_script(cache, "responses_stream.mjs", f"{live_server.url}/v1", live_server.model)
    assert seen["kinds"][:2] == ["response.created", "response.in_progress"]
    assert "response.output_text.delta" in seen["kinds"] and seen["text"]
    assert seen["finalText"] in (None, seen["text"])  # output_text is a convenience of some versions
    assert seen["chainedPrevious"] == seen["finalId"] and seen["chainedText"]
