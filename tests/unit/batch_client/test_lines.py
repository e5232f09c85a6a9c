"""Reading batch input lines and writing output lines, as a user's JSONL file meets them."""

from __future__ import annotations

import json

from llmserve.batch_client.lines import (
    BatchRequest,
    InvalidLine,
    error_line,
    is_success,
    parse_line,
    parse_lines,
    read_output_lines,
    success_line,
)

CHAT = "/v1/chat/completions"


def test_openai_batch_line_is_taken_as_is() -> None:
    raw = json.dumps(
        {
            "custom_id": "a",
            "method": "POST",
            "url": "/v1/embeddings",
            "body": {"model": "m", "input": "hello"},
        }
    )
    assert parse_line(raw, 1) == BatchRequest("a", "/v1/embeddings", {"model": "m", "input": "hello"}, 1)


def test_short_lines_become_chat_completions_and_keep_their_parameters() -> None:
    messages = parse_line('{"custom_id": "m", "messages": [{"role": "user", "content": "hi"}]}', 1)
    prompt = parse_line('{"custom_id": "p", "prompt": "hi", "max_tokens": 5}', 2)
    assert messages == BatchRequest("m", CHAT, {"messages": [{"role": "user", "content": "hi"}]}, 1)
    assert isinstance(prompt, BatchRequest)
    assert prompt.url == CHAT
    assert prompt.body == {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}


def test_model_option_fills_in_only_where_a_line_names_none() -> None:
    named = parse_line('{"custom_id": "a", "body": {"model": "mine", "messages": []}}', 1, model="other")
    unnamed = parse_line('{"custom_id": "b", "prompt": "hi"}', 2, model="other")
    without = parse_line('{"custom_id": "c", "prompt": "hi"}', 3)
    assert isinstance(named, BatchRequest) and named.body["model"] == "mine"
    assert isinstance(unnamed, BatchRequest) and unnamed.body["model"] == "other"
    assert isinstance(without, BatchRequest) and "model" not in without.body  # the server's default


def test_a_line_without_custom_id_is_named_after_its_line_number() -> None:
    parsed = parse_lines(
        ['{"prompt": "a"}\n', "\n", '{"custom_id": "x", "prompt": "b"}\n', '{"prompt": "c"}']
    )
    assert [request.custom_id for request in parsed.requests] == ["line-1", "x", "line-4"]


def test_bad_lines_are_reported_not_fatal() -> None:
    parsed = parse_lines(
        [
            '{"custom_id": "ok", "prompt": "hi"}',
            "{not json",
            "[1, 2]",
            '{"custom_id": "nothing"}',
            '{"custom_id": "get", "method": "GET", "url": "/v1/models", "body": {}}',
            '{"custom_id": "body", "body": "text"}',
        ]
    )
    assert [request.custom_id for request in parsed.requests] == ["ok"]
    assert [(item.custom_id, item.code) for item in parsed.invalid] == [
        ("line-2", "invalid_json"),
        ("line-3", "invalid_request"),
        ("nothing", "invalid_request"),
        ("get", "invalid_request"),
        ("body", "invalid_request"),
    ]
    assert all(f"line {item.line_no}" in item.message for item in parsed.invalid)
    assert parsed.total == 6


def test_repeated_custom_ids_are_found() -> None:
    parsed = parse_lines(['{"custom_id": "a", "prompt": "1"}', '{"custom_id": "a", "prompt": "2"}'])
    assert parsed.duplicates == ["a"]


def test_output_lines_have_openai_batch_output_shape() -> None:
    ok = success_line("a", 200, "req-1", {"object": "chat.completion"})
    failed = error_line("b", "rate_limit_exceeded", "slow down", status=429, body={"error": {}})
    unreachable = error_line("c", "connection_error", "refused")
    assert ok["id"].startswith("batch_req_") and ok["id"] != failed["id"]
    assert ok["response"] == {
        "status_code": 200,
        "request_id": "req-1",
        "body": {"object": "chat.completion"},
    }
    assert ok["error"] is None
    assert failed["response"]["status_code"] == 429
    assert failed["error"] == {"code": "rate_limit_exceeded", "message": "slow down"}
    assert unreachable["response"] is None
    assert [is_success(line) for line in (ok, failed, unreachable)] == [True, False, False]


def test_reading_output_skips_a_torn_last_line() -> None:
    text = json.dumps(success_line("a", 200, "", {})) + "\n" + '{"id": "batch_req_x", "custom_id": "b", "resp'
    assert [line["custom_id"] for line in read_output_lines(text)] == ["a"]


def test_invalid_line_keeps_line_number() -> None:
    item = parse_line("nope", 7)
    assert isinstance(item, InvalidLine) and item.custom_id == "line-7" and item.line_no == 7
