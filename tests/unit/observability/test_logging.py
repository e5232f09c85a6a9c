"""Log lines as an operator's log pipeline sees them: one JSON object per line with the request id and
the event's fields, no prompt or answer text unless asked for (then PII-masked), no API keys."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from llmserve.observability.context import request_id_var
from llmserve.observability.logging import LogFormat, configure_logging
from llmserve.schemas.openai import ChatMessageIn, ContentPart
from llmserve.services.llm_events import log_llm_error, log_llm_request, log_llm_response
from llmserve.types import ChatMessage

PII_PROMPT = "I am jane.doe@example.com, card 4111 1111 1111 1111"
SECRET = "sk-llm-" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1v"


class Captured:
    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        parsed = [orjson.loads(line) for line in self.text().splitlines()]
        assert all(isinstance(line, dict) for line in parsed)
        return parsed

    def one(self) -> dict[str, Any]:
        (line,) = self.lines()
        return line


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers = handlers
        root.setLevel(level)


def configured(fmt: LogFormat) -> Captured:
    stream = io.StringIO()
    configure_logging("info", fmt, stream=stream)
    return Captured(stream)


@pytest.fixture
def json_logs(restore_root: None) -> Captured:
    return configured("json")


@pytest.fixture
def text_logs(restore_root: None) -> Captured:
    return configured("text")


@pytest.fixture
def in_request() -> Iterator[str]:
    token = request_id_var.set("req-42")
    try:
        yield "req-42"
    finally:
        request_id_var.reset(token)


def test_a_json_line_has_time_level_logger_message_request_id_and_extra_fields(
    json_logs: Captured, in_request: str
) -> None:
    logging.getLogger("llmserve.test").warning("cache %s is slow", "redis", extra={"elapsed_ms": 812.5})

    line = json_logs.one()
    assert line["time"].endswith("Z") and "T" in line["time"]
    assert line["level"] == "WARNING"
    assert line["logger"] == "llmserve.test"
    assert line["message"] == "cache redis is slow"
    assert line["request_id"] == in_request
    assert line["elapsed_ms"] == 812.5


def test_json_lines_outside_a_request_say_so_and_carry_tracebacks(json_logs: Captured) -> None:
    try:
        raise RuntimeError("engine crashed")
    except RuntimeError:
        logging.getLogger("llmserve.engine").exception("generation failed")

    line = json_logs.one()
    assert line["request_id"] == "-"
    assert "RuntimeError: engine crashed" in line["exception"]


def test_every_line_is_its_own_json_object(json_logs: Captured) -> None:
    for n in range(3):
        logging.getLogger("llmserve").info("line\nwith a newline %d", n)
    assert [line["message"] for line in json_logs.lines()] == [f"line\nwith a newline {n}" for n in range(3)]


def test_llm_request_logs_who_asked_what_model_and_sizes_but_no_prompt_by_default(
    json_logs: Captured, in_request: str
) -> None:
    log_llm_request(
        logging.getLogger("llmserve.services.chat"),
        request_id=in_request,
        key_id="key_7",
        model="tiny-chat",
        endpoint="/v1/chat/completions",
        stream=True,
        prompt_messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": PII_PROMPT}],
    )

    line = json_logs.one()
    assert line["message"] == line["event"] == "llm_request"
    assert line["level"] == "INFO"
    assert {k: line[k] for k in ("request_id", "key_id", "model", "endpoint", "stream")} == {
        "request_id": "req-42",
        "key_id": "key_7",
        "model": "tiny-chat",
        "endpoint": "/v1/chat/completions",
        "stream": True,
    }
    assert line["prompt_messages"] == 2
    assert line["prompt_chars"] == len("Be brief.") + len(PII_PROMPT)
    assert "prompt" not in line
    assert "jane.doe" not in json_logs.text()


def test_with_payload_logging_on_the_prompt_is_logged_pii_masked(json_logs: Captured) -> None:
    log_llm_request(
        logging.getLogger("llmserve.services.chat"),
        request_id="r1",
        key_id=None,
        model="tiny-chat",
        endpoint="/v1/chat/completions",
        stream=False,
        prompt_messages=[ChatMessageIn(role="user", content=[ContentPart(type="text", text=PII_PROMPT)])],
        log_payloads=True,
    )

    line = json_logs.one()
    assert line["prompt"] == [{"role": "user", "content": "I am [EMAIL], card [CARD]"}]
    assert "4111" not in json_logs.text()


def test_the_pipelines_own_messages_are_logged_the_same_way(json_logs: Captured) -> None:
    log_llm_request(
        logging.getLogger("llmserve.services.chat"),
        request_id="r1",
        key_id="key_7",
        model="tiny-chat",
        endpoint="/v1/chat/completions",
        stream=True,
        prompt_messages=[ChatMessage("system", "Be brief."), ChatMessage("user", PII_PROMPT)],
        log_payloads=True,
    )
    line = json_logs.one()
    assert line["prompt"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "I am [EMAIL], card [CARD]"},
    ]
    assert line["prompt_chars"] == len("Be brief.") + len(PII_PROMPT)


def test_a_completion_prompt_string_is_one_message(json_logs: Captured) -> None:
    log_llm_request(
        logging.getLogger("llmserve"),
        request_id="r1",
        key_id=None,
        model="tiny-chat",
        endpoint="/v1/completions",
        stream=False,
        prompt_messages="Once upon a time",
        log_payloads=True,
    )
    line = json_logs.one()
    assert line["prompt"] == [{"role": "prompt", "content": "Once upon a time"}]
    assert line["prompt_chars"] == len("Once upon a time")


def respond(completion: str | None, *, log_payloads: bool) -> None:
    log_llm_response(
        logging.getLogger("llmserve.services.chat"),
        request_id="r9",
        key_id="key_7",
        model="gpt-4o-mini",
        deployment="openai-east",
        input_tokens=12,
        output_tokens=30,
        cost_usd=0.000123456789,
        latency_ms=812.3456,
        ttft_ms=95.111,
        cache_status="miss",
        attempts=2,
        completion_text=completion,
        log_payloads=log_payloads,
    )


def test_llm_response_logs_tokens_cost_latency_cache_and_attempts(json_logs: Captured) -> None:
    respond("Reach me at jane.doe@example.com", log_payloads=False)

    line = json_logs.one()
    assert line["event"] == "llm_response"
    assert line["request_id"] == "r9"
    assert line["deployment"] == "openai-east"
    assert (line["input_tokens"], line["output_tokens"]) == (12, 30)
    assert line["cost_usd"] == pytest.approx(0.00012346)
    assert (line["latency_ms"], line["ttft_ms"]) == (812.35, 95.11)
    assert (line["cache_status"], line["attempts"]) == ("miss", 2)
    assert line["completion_chars"] == len("Reach me at jane.doe@example.com")
    assert "completion" not in line
    assert "jane.doe" not in json_logs.text()


def test_with_payload_logging_on_the_answer_is_logged_pii_masked(json_logs: Captured) -> None:
    respond("Reach me at jane.doe@example.com", log_payloads=True)
    assert json_logs.one()["completion"] == "Reach me at [EMAIL]"


def test_llm_error_is_an_error_for_server_faults_and_a_warning_for_refusals(json_logs: Captured) -> None:
    logger = logging.getLogger("llmserve.api.errors")
    common: dict[str, Any] = {"request_id": "r5", "key_id": "key_7", "model": "tiny-chat"}
    log_llm_error(logger, **common, error_type="UpstreamError", status=502, message="all deployments failed")
    log_llm_error(
        logger, **common, error_type="RateLimited", status=429, message="limit for jane@example.com"
    )

    server, client = json_logs.lines()
    assert (server["event"], server["level"], server["status"]) == ("llm_error", "ERROR", 502)
    assert server["error_type"] == "UpstreamError"
    assert server["error_message"] == "all deployments failed"
    assert server["message"] == "llm_error"
    assert (client["level"], client["status"]) == ("WARNING", 429)
    assert client["error_message"] == "limit for [EMAIL]"


def test_api_keys_in_query_strings_never_reach_a_json_line(json_logs: Captured) -> None:
    # uvicorn's access log line, as uvicorn logs it.
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", f"/v1/ws?api_key={SECRET}&x=1", "1.1", 200
    )
    logging.getLogger("llmserve").info("retrying %s", f"/v1/models?api_key={SECRET}", extra={"url": SECRET})

    access, other = json_logs.lines()
    assert SECRET not in json_logs.text()
    assert access["path"] == "/v1/ws?api_key=[redacted]&x=1"
    assert (access["method"], access["status"]) == ("GET", 200)
    assert "api_key=[redacted]" in access["message"]
    assert other["message"] == "retrying /v1/models?api_key=[redacted]"
    assert other["url"] == "sk-llm-[redacted]"


def test_prompts_and_conversation_ids_in_query_strings_never_reach_the_access_log(
    json_logs: Captured,
) -> None:
    # EventSource clients put the prompt in the URL; a conversation id is a capability to its history.
    for path in (
        "/chat/stream?prompt=my%20card%204111&max_tokens=5",
        "/chat/get/messages/?conversation_id=c-42",
    ):
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", path, "1.1", 200
        )
    stream, messages = json_logs.lines()
    assert stream["path"] == "/chat/stream?prompt=[redacted]&max_tokens=5"
    assert messages["path"] == "/chat/get/messages/?conversation_id=[redacted]"
    assert "4111" not in json_logs.text() and "c-42" not in json_logs.text()


def test_uvicorns_coloured_copy_of_a_message_is_left_out(json_logs: Captured) -> None:
    logging.getLogger("uvicorn.error").info(
        "Started server process [%d]",
        42,
        extra={"color_message": "Started server process [\x1b[36m%d\x1b[0m]"},
    )
    line = json_logs.one()
    assert line["message"] == "Started server process [42]"
    assert "color_message" not in line


def test_text_lines_keep_the_old_shape_and_append_event_fields(text_logs: Captured, in_request: str) -> None:
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", f"/v1/ws?api_key={SECRET}", "1.1", 101
    )
    log_llm_error(
        logging.getLogger("llmserve.api.errors"),
        request_id=in_request,
        key_id=None,
        model="tiny-chat",
        error_type="Timeout",
        status=504,
        message="upstream took too long",
    )

    access, error = text_logs.text().splitlines()
    assert " INFO [req-42] uvicorn.access: " in access
    assert "api_key=[redacted]" in access and SECRET not in access
    assert " ERROR [req-42] llmserve.api.errors: llm_error event=llm_error " in error
    assert 'status=504 error_message="upstream took too long"' in error
    assert "key_id=None" in error


def test_an_explicit_request_id_wins_over_the_current_one(json_logs: Captured, in_request: str) -> None:
    respond(None, log_payloads=False)
    assert json_logs.one()["request_id"] == "r9"


def test_the_level_setting_drops_quieter_lines(restore_root: None) -> None:
    stream = io.StringIO()
    configure_logging("warning", "json", stream=stream)
    logging.getLogger("llmserve").info("hidden")
    logging.getLogger("llmserve").warning("shown")
    assert [orjson.loads(line)["message"] for line in stream.getvalue().splitlines()] == ["shown"]


def test_the_one_argument_form_still_configures_text_logging(restore_root: None) -> None:
    configure_logging("info")
    (handler,) = logging.getLogger().handlers
    assert handler.formatter is not None
    assert "%(request_id)s" in str(handler.formatter._fmt)
