"""The examples in examples/ run as documented against a live server and print what they promise.

Replies are greedy (temperature 0), so what an example prints is compared with the server's own
answer to the same prompt, fetched here without streaming.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.live_server import LiveServer

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RUN_TIMEOUT_S = 180


def require(tool: str) -> str:
    """The tool's path; a missing tool skips the test locally and fails it in CI."""
    path = shutil.which(tool)
    if path is None:
        message = f"'{tool}' is not on PATH"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} (CI=true: a missing tool is a broken pipeline)")
        pytest.skip(message)
    return path


def run_example(command: list[str], server: LiveServer) -> str:
    # A UTF-8 locale, as a user's terminal has: the JVM decodes its arguments with it.
    env = {**os.environ, "LLMSERVE_URL": server.url, "LLMSERVE_MODEL": server.model, "LC_ALL": "C.UTF-8"}
    result = subprocess.run(
        command, cwd=EXAMPLES.parent, env=env, capture_output=True, timeout=RUN_TIMEOUT_S, check=False
    )
    stdout = result.stdout.decode("utf-8")
    assert result.returncode == 0, (
        f"{command} exited {result.returncode}:\n{stdout}\n{result.stderr.decode()}"
    )
    return stdout


def greedy_reply(server: LiveServer, prompt: str) -> str:
    body = {"model": server.model, "messages": [{"role": "user", "content": prompt}], "temperature": 0}
    response = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=60)
    response.raise_for_status()
    content: str = response.json()["choices"][0]["message"]["content"]
    assert content
    return content


def sections(stdout: str) -> list[tuple[str, str]]:
    """curl.sh prints ``== METHOD /path ...`` before each answer: (heading, body) in order."""
    parts = re.split(r"^== (.*)$", stdout, flags=re.MULTILINE)
    return [(heading, body.strip()) for heading, body in zip(parts[1::2], parts[2::2], strict=True)]


def sse_payloads(body: str) -> list[str]:
    return [line[len("data: ") :] for line in body.splitlines() if line.startswith("data: ")]


def test_curl_script(live_server: LiveServer) -> None:
    stdout = run_example([require("bash"), str(EXAMPLES / "curl.sh")], live_server)
    answers = sections(stdout)
    assert len(answers) == 5, stdout
    completion, stream, seed, stored, seed_stream = (body for _, body in answers)

    assert json.loads(completion)["choices"][0]["message"]["content"] == greedy_reply(live_server, "Hello!")

    events = sse_payloads(stream)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    streamed = "".join(chunk["choices"][0]["delta"].get("content", "") for chunk in chunks)
    assert streamed == greedy_reply(live_server, "你好")

    reply = json.loads(seed)
    assert reply["status"] == 200 and reply["response"]
    messages = json.loads(stored)
    assert messages["conversation_id"] == reply["conversation_id"]
    assert [m["content"] for m in messages["messages"]] == ["What is 2 plus 3?", reply["response"]]

    pieces = sse_payloads(seed_stream)
    assert pieces[-1] == "[DONE]"
    texts = [json.loads(piece) for piece in pieces[:-1]]
    assert len({piece["message_id"] for piece in texts}) == 1
    assert "".join(piece["text"] for piece in texts) == greedy_reply(live_server, "What is your name?")


def test_python_sdk_example(live_server: LiveServer) -> None:
    stdout = run_example([sys.executable, str(EXAMPLES / "python_sdk.py")], live_server)
    lines = stdout.splitlines()

    assert lines[0] == f"models: {[live_server.model]}"
    assert lines[1] == f"sync: {greedy_reply(live_server, 'Hello!')}"
    assert re.fullmatch(r"usage: [1-9]\d* prompt \+ [1-9]\d* completion tokens", lines[2])
    assert lines[3] == f"stream: {greedy_reply(live_server, 'What is your name?')}"
    asked = [line for line in lines[4:] if line.startswith("async: ")]
    assert len(asked) == 3
    for line in asked:
        prompt, answer = line.removeprefix("async: ").split(" -> ", 1)
        assert answer == greedy_reply(live_server, prompt)


def test_java_http_client_example(live_server: LiveServer) -> None:
    java = require("java")
    stdout = run_example([java, str(EXAMPLES / "java" / "StreamChat.java"), "你好"], live_server)
    assert stdout.strip() == greedy_reply(live_server, "你好")
