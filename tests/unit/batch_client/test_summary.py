"""The end-of-run summary and the retry rules: what a user reads and what decides a retry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime

from llmserve.batch_client.http import ClientConfig, backoff_s, error_of, is_retryable, retry_after_s
from llmserve.batch_client.lines import error_line, success_line
from llmserve.batch_client.summary import Summary, price_cost


def answered(custom_id: str, model: str, prompt: int, completion: int) -> dict[str, object]:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    return success_line(custom_id, 200, "", {"model": model, "usage": usage})


def test_list_prices_match_the_longest_model_prefix() -> None:
    assert price_cost("gpt-4o-mini-2024-07-18", 1000, 1000) == Decimal("0.00075")
    assert price_cost("gpt-4o", 1000, 0) == Decimal("0.0025")
    assert price_cost("openai/gpt-4o", 0, 1000) == Decimal("0.01")
    assert price_cost("tiny-chat", 10**6, 10**6) == 0
    assert price_cost("my-finetune", 1, 1) is None


def test_summary_adds_tokens_and_cost_and_names_failures() -> None:
    summary = Summary(total=4)
    summary.record(answered("a", "gpt-4o-mini", 1000, 1000), ok=True)
    summary.record(answered("b", "whatever", 10, 5), ok=True, cost_header="0.5")
    summary.record(error_line("c", "server_error", "boom", status=500), ok=False)
    data = summary.as_dict()
    assert (data["succeeded"], data["failed"], data["not_run"]) == (2, 1, 1)
    assert (data["prompt_tokens"], data["completion_tokens"], data["total_tokens"]) == (1010, 1005, 2015)
    assert Decimal(data["cost_usd"]) == Decimal("0.50075")  # the server's header wins over the table
    assert data["failed_custom_ids"] == ["c"]
    assert not summary.all_succeeded
    assert "failed custom_ids: c" in summary.render()


def test_unknown_prices_are_said_not_counted_as_free() -> None:
    summary = Summary(total=2)
    summary.record(answered("a", "my-finetune", 10, 10), ok=True)
    assert summary.cost_text() == "n/a (unknown price)"
    assert summary.as_dict()["cost_usd"] is None
    summary.record(answered("b", "gpt-4o", 1000, 0), ok=True)
    assert summary.cost_text() == "$0.002500 + 1 line(s) of unknown price (my-finetune)"


def test_only_the_first_ten_failed_ids_are_listed() -> None:
    summary = Summary(total=12)
    for index in range(12):
        summary.record(error_line(f"id-{index}", "timeout", "slow"), ok=False)
    assert summary.as_dict()["failed_custom_ids"] == [f"id-{index}" for index in range(10)]
    assert "(+2 more)" in summary.render()


def test_which_answers_are_retried() -> None:
    assert [is_retryable(status) for status in (408, 409, 429, 500, 502, 503)] == [True] * 6
    assert [is_retryable(status) for status in (400, 401, 403, 404, 422)] == [False] * 5


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after_s("0") == 0
    assert retry_after_s("2.5") == 2.5
    assert retry_after_s("-3") == 0
    assert retry_after_s("99999") == 300  # capped: a rerun is the better answer to "come back tomorrow"
    assert retry_after_s(None) is None and retry_after_s("soon") is None
    in_ten = format_datetime(datetime.now(UTC) + timedelta(seconds=10), usegmt=True)
    delay = retry_after_s(in_ten)
    assert delay is not None and 8 <= delay <= 10


def test_backoff_grows_with_full_jitter_up_to_the_cap() -> None:
    config = ClientConfig(server="http://x", backoff_base_s=1.0, backoff_cap_s=5.0)
    assert all(0 <= backoff_s(config, 0) <= 1 for _ in range(100))
    assert all(0 <= backoff_s(config, 10) <= 5 for _ in range(100))
    assert max(backoff_s(config, 2) for _ in range(200)) > 1  # it does grow


def test_error_code_and_message_come_from_the_openai_error_body() -> None:
    body = {"error": {"message": "Too many", "type": "rate_limit_error", "code": "rate_limit_exceeded"}}
    assert error_of(body, 429) == ("rate_limit_exceeded", "Too many")
    assert error_of({"error": {"message": "x", "type": "server_error"}}, 500) == ("server_error", "x")
    assert error_of(None, 502) == ("http_502", "HTTP 502")


def test_a_server_url_ending_in_v1_is_accepted() -> None:
    assert ClientConfig(server="http://h:1/v1/").base_url == "http://h:1"
    assert ClientConfig(server="http://h:1").base_url == "http://h:1"
