"""The Node ``openai`` SDK (the major version users run, 6.x) against a live server: a streamed
Responses API call and a chained one. The package is installed once per machine into a cache
directory (not the repository); a machine without Node.js skips, CI fails."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.live_server import LiveServer

pytestmark = pytest.mark.e2e

SCRIPT = Path(__file__).parent / "node" / "responses_stream.mjs"
NODE_OPENAI = "openai@6"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "llmserve-test" / "node-openai-6"


def _node_with_openai() -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        reason = "Node.js and npm are needed for the Node SDK test"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    if not (CACHE / "node_modules" / "openai" / "package.json").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        (CACHE / "package.json").write_text('{"name": "llmserve-node-sdk-test", "private": true}')
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--silent", NODE_OPENAI],
            cwd=CACHE,
            check=True,
            timeout=300,
        )
    return CACHE


def test_the_node_sdk_streams_a_response_and_continues_it(live_server: LiveServer) -> None:
    cache = _node_with_openai()
    script = cache / SCRIPT.name  # next to node_modules, so `import "openai"` resolves
    shutil.copyfile(SCRIPT, script)
    ran = subprocess.run(
        ["node", str(script), f"{live_server.url}/v1", live_server.model],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    seen = json.loads(ran.stdout.strip().splitlines()[-1])
    assert seen["kinds"][:2] == ["response.created", "response.in_progress"]
    assert "response.output_text.delta" in seen["kinds"] and seen["text"]
    assert seen["finalText"] in (None, seen["text"])  # output_text is a convenience of some versions
    assert seen["chainedPrevious"] == seen["finalId"] and seen["chainedText"]
