"""``llmserve batch run`` as a user runs it: a subprocess, a JSONL file, a real server on a real socket.

Against the live llmserve with its bundled model: a plain run, a bad line, resume, and the Batch API
mode. Against loopback upstreams that fail on demand:
retries on 429/5xx/resets, final 4xx, the server's cost header, and the Batch API protocol end to end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.batch_api_fake import FakeBatchApi
from tests.live_server import LiveServer
from tests.upstreams.openai_app import OpenAIUpstream
from tests.upstreams.server import Fault, Reply, StreamReply, UpstreamRequest, UpstreamServer

pytestmark = pytest.mark.e2e

CLI_TIMEOUT_S = 120


def batch_run(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("LLMSERVE_") and key != "OPENAI_API_KEY"
    }
    return subprocess.run(
        [sys.executable, "-m", "llmserve", "batch", "run", *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        env={**clean, **(env or {})},
        check=False,
    )


def chat_line(custom_id: str, text: str) -> dict[str, Any]:
    body = {"messages": [{"role": "user", "content": text}], "max_tokens": 8}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def write_jsonl(path: Path, lines: list[dict[str, Any] | str]) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def summary_of(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def by_id(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    counts = Counter(line["custom_id"] for line in lines)
    assert all(count == 1 for count in counts.values()), f"custom_ids repeated: {counts.most_common(3)}"
    return {line["custom_id"]: line for line in lines}


# -- against the live llmserve ----------------------------------------------------------------------


def test_twenty_lines_all_answered(live_server: LiveServer, tmp_path: Path) -> None:
    lines: list[dict[str, Any] | str] = [chat_line(f"req-{i}", f"say {i}") for i in range(15)]
    lines += [{"custom_id": f"short-{i}", "prompt": f"hello {i}", "max_tokens": 4} for i in range(5)]
    source = write_jsonl(tmp_path / "in.jsonl", lines)
    out, summary = tmp_path / "out.jsonl", tmp_path / "summary.json"

    done = batch_run(str(source), "-o", str(out), "--server", live_server.url, "--summary-json", str(summary))

    assert done.returncode == 0, done.stderr
    answers = by_id(read_jsonl(out))
    assert set(answers) == {f"req-{i}" for i in range(15)} | {f"short-{i}" for i in range(5)}
    for line in answers.values():
        assert line["id"].startswith("batch_req_") and line["error"] is None
        assert line["response"]["status_code"] == 200 and line["response"]["request_id"]
        assert line["response"]["body"]["object"] == "chat.completion"
    report = summary_of(summary)
    assert (report["total"], report["succeeded"], report["failed"], report["skipped"]) == (20, 20, 0, 0)
    assert report["total_tokens"] > 0 and report["prompt_tokens"] > 0
    assert "20 succeeded" in done.stderr


def test_an_invalid_line_is_an_error_line_and_exit_code_1(live_server: LiveServer, tmp_path: Path) -> None:
    source = write_jsonl(
        tmp_path / "in.jsonl", [chat_line("good", "hi"), "{this is not json", chat_line("also", "x")]
    )
    out = tmp_path / "out.jsonl"

    done = batch_run(str(source), "-o", str(out), "--server", live_server.url)

    assert done.returncode == 1, done.stderr
    answers = by_id(read_jsonl(out))
    assert answers["good"]["response"]["status_code"] == 200
    assert answers["also"]["response"]["status_code"] == 200
    assert answers["line-2"]["response"] is None
    assert answers["line-2"]["error"]["code"] == "invalid_json"
    assert "failed custom_ids: line-2" in done.stderr


def test_resume_skips_what_was_answered_and_reruns_failures(live_server: LiveServer, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [chat_line(f"r{i}", f"line {i}") for i in range(10)])
    out, summary = tmp_path / "out.jsonl", tmp_path / "summary.json"
    earlier = [
        {
            "id": f"batch_req_old{i}",
            "custom_id": f"r{i}",
            "response": {"status_code": 200, "request_id": "", "body": {"id": f"chatcmpl-earlier-{i}"}},
            "error": None,
        }
        for i in range(5)
    ]
    earlier.append(
        {
            "id": "batch_req_old5",
            "custom_id": "r5",
            "response": {"status_code": 500, "request_id": "", "body": {"error": {"message": "boom"}}},
            "error": {"code": "server_error", "message": "boom"},
        }
    )
    write_jsonl(out, list(earlier))

    done = batch_run(str(source), "-o", str(out), "--server", live_server.url, "--summary-json", str(summary))

    assert done.returncode == 0, done.stderr
    report = summary_of(summary)
    assert (report["skipped"], report["succeeded"], report["failed"]) == (5, 5, 0)
    answers = by_id(read_jsonl(out))
    assert set(answers) == {f"r{i}" for i in range(10)}
    for i in range(5):  # kept as they were, not sent again
        assert answers[f"r{i}"]["response"]["body"]["id"] == f"chatcmpl-earlier-{i}"
    assert answers["r5"]["response"]["status_code"] == 200  # the failure was replaced
    assert answers["r5"]["response"]["body"]["object"] == "chat.completion"

    again = batch_run(
        str(source),
        "-o",
        str(out),
        "--server",
        live_server.url,
        "--no-resume",
        "--summary-json",
        str(summary),
    )
    assert again.returncode == 0, again.stderr
    assert summary_of(summary)["skipped"] == 0
    assert all(line["response"]["body"]["object"] == "chat.completion" for line in read_jsonl(out))


def test_missing_input_is_exit_code_2(tmp_path: Path) -> None:
    done = batch_run(str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "out.jsonl"))
    assert done.returncode == 2
    assert "nope.jsonl" in done.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_via_batch_api_on_the_live_server(live_server: LiveServer, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [chat_line(f"b{i}", f"batch {i}") for i in range(5)])
    out = tmp_path / "out.jsonl"

    done = batch_run(
        str(source), "-o", str(out), "--server", live_server.url, "--via-batch-api", "--poll-interval", "0.2"
    )

    assert done.returncode == 0, done.stderr
    answers = by_id(read_jsonl(out))
    assert set(answers) == {f"b{i}" for i in range(5)}
    assert all(line["response"]["body"]["object"] == "chat.completion" for line in answers.values())


# -- against loopback upstreams that fail on demand -------------------------------------------------


def test_429_5xx_and_resets_are_retried_until_every_line_succeeds(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "in.jsonl", [chat_line(f"r{i}", f"word {i}") for i in range(6)])
    out, summary = tmp_path / "out.jsonl", tmp_path / "summary.json"
    with UpstreamServer(OpenAIUpstream(model="gpt-4o-mini")) as upstream:
        upstream.fail(
            Fault("status", 429, retry_after="0"),
            Fault("status", 500),
            Fault("reset"),
            Fault("status", 503, retry_after="0"),
            Fault("status", 429, retry_after="0"),
        )
        done = batch_run(
            str(source), "-o", str(out), "--server", upstream.url, "--concurrency", "2",
            "--summary-json", str(summary),
        )  # fmt: skip
        sent = len(upstream.requests)

    assert done.returncode == 0, done.stderr
    answers = by_id(read_jsonl(out))
    assert set(answers) == {f"r{i}" for i in range(6)}
    assert all(line["response"]["body"]["choices"][0]["message"]["content"] for line in answers.values())
    report = summary_of(summary)
    assert (report["succeeded"], report["failed"], report["retries"]) == (6, 0, 5)
    assert sent == 6 + 5
    assert Decimal(report["cost_usd"]) > 0  # gpt-4o-mini is in the built-in price list


def test_client_errors_are_final_and_retries_run_out(tmp_path: Path) -> None:
    empty = {"custom_id": "empty", "url": "/v1/chat/completions", "body": {"messages": []}}
    source = write_jsonl(tmp_path / "in.jsonl", [empty])
    out = tmp_path / "out.jsonl"
    with UpstreamServer(OpenAIUpstream()) as upstream:
        refused = batch_run(str(source), "-o", str(out), "--server", upstream.url)
        assert len(upstream.requests) == 1  # a 400 is the request's fault: not sent again

        write_jsonl(source, [chat_line("busy", "hi")])
        upstream.fail_always(Fault("status", 503, retry_after="0"))
        exhausted = batch_run(str(source), "-o", str(out), "--server", upstream.url, "--retries", "2")
        assert len(upstream.requests) == 1 + 3

    assert refused.returncode == 1 and exhausted.returncode == 1
    answers = by_id(read_jsonl(out))
    assert answers["empty"]["response"]["status_code"] == 400
    assert answers["busy"]["response"]["status_code"] == 503
    assert answers["busy"]["error"]["code"] == "server_error"


def test_the_servers_cost_header_is_summed(tmp_path: Path) -> None:
    answer = OpenAIUpstream(model="some-private-model")

    def with_cost(request: UpstreamRequest) -> Reply | StreamReply:
        reply = answer(request)
        assert isinstance(reply, Reply)
        reply.headers["x-llmserve-cost-usd"] = "0.00125"
        return reply

    source = write_jsonl(tmp_path / "in.jsonl", [chat_line(f"r{i}", "hi") for i in range(4)])
    summary = tmp_path / "summary.json"
    with UpstreamServer(with_cost) as upstream:
        done = batch_run(
            str(source),
            "-o",
            str(tmp_path / "out.jsonl"),
            "--server",
            upstream.url,
            "--summary-json",
            str(summary),
        )
    assert done.returncode == 0, done.stderr
    assert Decimal(summary_of(summary)["cost_usd"]) == Decimal("0.005")


def test_via_batch_api_protocol_splits_by_endpoint_and_collects_errors(tmp_path: Path) -> None:
    api = FakeBatchApi()
    lines: list[dict[str, Any] | str] = [chat_line(f"chat-{i}", f"hi {i}") for i in range(3)]
    lines.append(
        {"custom_id": "embed", "url": "/v1/embeddings", "body": {"input": "vector me", "model": "e"}}
    )
    lines.append({"custom_id": "bad", "url": "/v1/chat/completions", "body": {"messages": []}})
    source = write_jsonl(tmp_path / "in.jsonl", lines)
    out, summary = tmp_path / "out.jsonl", tmp_path / "summary.json"
    with UpstreamServer(api) as server:
        server.fail(Fault("status", 503, retry_after="0"))  # the upload is retried too
        done = batch_run(
            str(source), "-o", str(out), "--server", server.url, "--via-batch-api", "--poll-interval", "0.05",
            "--api-key", "sk-test", "--summary-json", str(summary),
        )  # fmt: skip
        auth = {request.headers.get("authorization") for request in server.requests}

    assert done.returncode == 1, done.stderr  # "bad" failed
    assert sorted(batch.endpoint for batch in api.batches.values()) == [
        "/v1/chat/completions",
        "/v1/embeddings",
    ]
    assert auth == {"Bearer sk-test"}
    answers = by_id(read_jsonl(out))
    assert set(answers) == {"chat-0", "chat-1", "chat-2", "embed", "bad"}
    assert answers["embed"]["response"]["body"]["object"] == "list"
    assert answers["bad"]["response"]["status_code"] == 400
    report = summary_of(summary)
    assert (report["succeeded"], report["failed"], report["retries"]) == (4, 1, 1)
    assert report["failed_custom_ids"] == ["bad"]
