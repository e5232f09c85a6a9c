"""Time to first token and decode speed of a served model, measured over HTTP with the openai SDK.

    python benchmarks/first_token.py                 # starts a server with the bundled model
    python benchmarks/first_token.py --url http://127.0.0.1:8888 --model tiny-chat

Each request streams a fixed-length reply (``ignore_eos``) so tokens/s compares like with like.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import httpx
from openai import OpenAI

PROMPTS = ["Hello!", "What is your name?", "What is 2 plus 3?", "你好", "中国的首都是哪里?"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def local_server() -> Iterator[str]:
    port = free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        command = [sys.executable, "-m", "llmserve", "serve", "--port", str(port), "--data-dir", data_dir]
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{url}/ready").status_code == 200:
                        break
                time.sleep(0.2)
            else:
                raise RuntimeError("server did not become ready")
            yield url
        finally:
            server.terminate()
            server.wait(15)


def measure(url: str, model: str | None, requests: int, max_tokens: int) -> None:
    client = OpenAI(base_url=f"{url}/v1", api_key="unused")
    first_token_ms: list[float] = []
    decode_rates: list[float] = []
    for i in range(requests):
        started = time.perf_counter()
        first = None
        tokens = 0
        stream = client.chat.completions.create(
            model=model or "tiny-chat",
            messages=[{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
            max_tokens=max_tokens,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"ignore_eos": True},
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content and first is None:
                first = time.perf_counter()
            if chunk.usage:
                tokens = chunk.usage.completion_tokens
        ended = time.perf_counter()
        assert first is not None, "no content streamed"
        first_token_ms.append((first - started) * 1000)
        decode_rates.append((tokens - 1) / (ended - first))
    cpu = platform.processor() or platform.machine()
    print(f"machine: {platform.node()} {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"requests: {requests} sequential, {max_tokens} tokens each, streamed over HTTP")
    quantiles = statistics.quantiles(first_token_ms, n=10)
    print(f"time to first token: p50 {statistics.median(first_token_ms):.1f} ms, p90 {quantiles[-1]:.1f} ms")
    print(f"decode speed: {statistics.median(decode_rates):.0f} tokens/s (median per request)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", help="a running server; default: start one with the bundled model")
    parser.add_argument("--model", default=None)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()
    if args.url:
        measure(args.url, args.model, args.requests, args.max_tokens)
        return
    with local_server() as url:
        measure(url, args.model, 2, 8)  # warm up: first load, first allocations
        measure(url, args.model, args.requests, args.max_tokens)


if __name__ == "__main__":
    main()
