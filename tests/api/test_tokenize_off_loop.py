"""Issue 14, item 5: tokenizing and chat templating run off the event loop. A few megabytes of chat
sent to /v1/tokenize (or to a chat that ends in 400) took the bundled tokenizer seconds on the loop,
and every other request, /health included, waited for it. Real uvicorn in a thread, default limits."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from llmserve.app import create_app
from llmserve.config import load_settings
from llmserve.engine import offload
from llmserve.errors import Overloaded
from tests.e2e.api.uvicorn_thread import serve_in_thread

# 16 messages just under the default max_message_chars (200,000): about 3.2 MB, inside the 4 MB body
# limit, and several seconds of tokenizer work.
BIG_CHAT = [{"role": "user", "content": "hello world, 你好 " * 11_000} for _ in range(16)]
# Before the fix /health waited out the whole tokenization (seconds); a worker thread leaves it
# answering in milliseconds. The bound leaves room for a busy shared 2-core CI machine.
HEALTH_BOUND_S = 1.0


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = load_settings(data_dir=str(tmp_path_factory.mktemp("offloop")))
    app = create_app(settings)
    for port in serve_in_thread(app, start_within=60):
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url, timeout=120) as client:  # loads the model once
            assert client.post("/v1/tokenize", json={"prompt": "hi"}).status_code == 200
        yield url


def _health_latencies_while(base_url: str, path: str, body: dict[str, object]) -> tuple[list[float], int]:
    outcome: list[int] = []

    def send() -> None:
        with httpx.Client(base_url=base_url, timeout=120) as client:
            outcome.append(client.post(path, json=body).status_code)

    sender = threading.Thread(target=send)
    latencies: list[float] = []
    with httpx.Client(base_url=base_url, timeout=30) as health:
        sender.start()
        while sender.is_alive():
            started = time.perf_counter()
            assert health.get("/health").status_code == 200
            latencies.append(time.perf_counter() - started)
            time.sleep(0.02)
    sender.join()
    return latencies, outcome[0]


def test_health_answers_while_a_big_chat_is_tokenized(base_url: str) -> None:
    latencies, status = _health_latencies_while(base_url, "/v1/tokenize", {"messages": BIG_CHAT})
    assert status == 200
    assert max(latencies) < HEALTH_BOUND_S, f"/health took {max(latencies):.2f} s"
    assert len(latencies) >= 5, "the tokenization was too quick to measure anything"


def test_health_answers_while_a_big_chat_is_rendered_and_refused(base_url: str) -> None:
    # Past the bundled model's 512-token context: rendered and counted, then 400.
    body = {"messages": BIG_CHAT, "max_tokens": 8}
    latencies, status = _health_latencies_while(base_url, "/v1/chat/completions", body)
    assert status == 400
    assert max(latencies) < HEALTH_BOUND_S, f"/health took {max(latencies):.2f} s"
    assert len(latencies) >= 5, "the chat was refused too quickly to measure anything"


def test_a_short_prompt_is_tokenized_inline_and_a_long_one_in_the_pool() -> None:
    calls: list[str] = []

    def work() -> str:
        calls.append(threading.current_thread().name)
        return "done"

    asyncio.run(offload.run_sized(10, work))
    asyncio.run(offload.run_sized(offload.INLINE_CHARS + 1, work))
    assert calls[0] == threading.main_thread().name
    assert calls[1].startswith("llmserve-tokenize")


def test_past_the_pools_backlog_a_large_input_is_shed_with_503(monkeypatch: pytest.MonkeyPatch) -> None:
    # A flood of large prompts must not queue minutes of work, each holding its body in memory.
    monkeypatch.setattr(offload, "_in_pool", offload.POOL_THREADS + offload.MAX_WAITING)
    with pytest.raises(Overloaded) as refused:
        asyncio.run(offload.run_sized(offload.INLINE_CHARS + 1, str))
    assert refused.value.status_code == 503 and refused.value.retry_after == 1
    assert asyncio.run(offload.run_sized(10, str, "small")) == "small"  # small ones never wait


def test_the_engine_leaves_one_core_to_the_event_loop_unless_told_otherwise() -> None:
    # torch's own default (every core) starved the loop at 10x overload: /health p99 268 ms.
    assert offload.engine_threads(None, cores=2) == 1
    assert offload.engine_threads(None, cores=8) == 7
    assert offload.engine_threads(None, cores=1) == 1
    assert offload.engine_threads(3, cores=2) == 3  # engine.threads wins
