"""convert: wire bodies → the pipeline's inputs, and who is asking (tenant, priority floor)."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from llmserve.api.serving import convert
from llmserve.errors import InvalidRequest
from llmserve.principal import PRIORITY_FLOOR_SCOPE_KEY
from llmserve.schemas.openai import CacheControl, ChatCompletionRequest


def request(headers: dict[str, str] | None = None, scope: dict[str, object] | None = None) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request(
        {"type": "http", "method": "POST", "path": "/", "headers": raw, "state": {}, **(scope or {})}
    )


def test_developer_messages_are_system_messages_and_tool_fields_pass_through() -> None:
    body = ChatCompletionRequest.model_validate(
        {
            "messages": [
                {"role": "developer", "content": "be brief"},
                {"role": "tool", "content": "42", "tool_call_id": "call_1"},
            ]
        }
    )
    history, messages = convert.chat_messages(body)
    assert history == [] and [m.role for m in messages] == ["system", "tool"]
    assert messages[1].tool_call_id == "call_1"


def test_max_tokens_and_max_completion_tokens_must_agree() -> None:
    body = ChatCompletionRequest.model_validate(
        {"messages": [{"role": "user", "content": "x"}], "max_tokens": 5, "max_completion_tokens": 6}
    )
    with pytest.raises(InvalidRequest, match="not both"):
        convert.chat_options(body)


def test_without_auth_the_tenant_is_a_digest_of_the_token_so_two_tokens_never_share_a_cache() -> None:
    first = convert.request_context(request({"Authorization": "Bearer sk-a"}))
    second = convert.request_context(request({"Authorization": "Bearer sk-b"}))
    anonymous = convert.request_context(request())
    assert first.tenant != second.tenant and first.tenant.startswith("key:")
    assert anonymous.tenant == "anonymous" and anonymous.api_key is None
    assert "sk-a" not in first.tenant


def test_queued_work_never_outranks_interactive_traffic_and_cache_controls_are_read() -> None:
    ctx = convert.request_context(
        request(scope={PRIORITY_FLOOR_SCOPE_KEY: 50}), CacheControl(ttl=30), priority=1
    )
    assert ctx.priority == 50
    assert ctx.cache_ttl == 30.0 and ctx.cache_opt_in and not ctx.no_cache
