"""openai_completions: text_completion bodies and events, echo, one prompt per request."""

from __future__ import annotations

import pytest
from openai.types import Completion as SdkCompletion

from llmserve.api.serving import openai_completions
from llmserve.errors import InvalidRequest
from llmserve.request_context import RequestContext
from llmserve.schemas.openai import CompletionRequest, CompletionResponse
from tests.unit.api.serving.conftest import service, sse_payloads


async def test_the_answer_parses_as_the_sdks_completion_and_echo_prepends_the_prompt() -> None:
    chat, _ = service()
    plain = await openai_completions.answer(
        chat, CompletionRequest.model_validate({"prompt": "Once", "max_tokens": 4}), RequestContext()
    )
    echoed = await openai_completions.answer(
        chat,
        CompletionRequest.model_validate({"prompt": "Once", "max_tokens": 4, "echo": True}),
        RequestContext(),
    )
    assert SdkCompletion.model_validate(plain.body).choices[0].text == "hello"
    assert echoed.body["choices"][0]["text"] == "Oncehello"
    assert set(plain.body) == set(CompletionResponse.model_fields)


async def test_events_are_text_completion_objects_then_done() -> None:
    chat, _ = service()
    body = CompletionRequest.model_validate({"prompt": "Once", "max_tokens": 4, "stream": True})
    payloads = await sse_payloads((await openai_completions.stream(chat, body, RequestContext())).events)
    assert payloads[-1] == "[DONE]"
    events = [p for p in payloads[:-1] if isinstance(p, dict)]
    assert len(events) == len(payloads) - 1 and {e["object"] for e in events} == {"text_completion"}
    # finish_reason is null until the last piece, as OpenAI streams it (the SDK reads chunks unvalidated)
    assert [e["choices"][0]["finish_reason"] for e in events] == [None, "stop"]
    assert "".join(e["choices"][0]["text"] for e in events) == "hello!"


async def test_several_prompts_in_one_request_are_refused_before_any_call() -> None:
    chat, fixture = service()
    with pytest.raises(InvalidRequest, match="Batch API"):
        await openai_completions.answer(
            chat, CompletionRequest.model_validate({"prompt": ["a", "b"]}), RequestContext()
        )
    assert fixture.provider.calls == 0 and fixture.log == []
