"""Cache keys: what makes two requests the same, and which requests may be replayed at all.

That another process computes the same keys is checked in tests/e2e/cache/test_keys.py."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from llmserve.cache.entries import CacheRequest
from llmserve.cache.keys import MAX_SEMANTIC_CHARS, exact_key, is_cacheable, semantic_scope, semantic_text
from llmserve.types import ChatMessage, GenerationOptions, NativeRequest
from tests.unit.cache.fakes import TOOL, TOOL_REORDERED, chat

# One value per GenerationOptions field that differs from the default (every field must be listed).
CHANGED_OPTIONS: dict[str, Any] = {
    "max_tokens": 64,
    "temperature": 0.5,
    "top_p": 0.9,
    "top_k": 40,
    "n": 2,
    "stop": ("\n",),
    "seed": 7,
    "presence_penalty": 0.5,
    "frequency_penalty": 0.5,
    "clamp_max_tokens": True,
    "tools": (TOOL,),
    "tool_choice": "auto",
    "response_format": {"type": "json_object"},
    "logprobs": True,
    "ignore_eos": True,
    "native": NativeRequest("anthropic", {"thinking": {"type": "enabled"}}),
}


def test_every_generation_option_is_listed_here() -> None:
    # A new option must be added to the key (keys.py) and to CHANGED_OPTIONS.
    assert {field.name for field in dataclasses.fields(GenerationOptions)} == set(CHANGED_OPTIONS)


@pytest.mark.parametrize("name", sorted(CHANGED_OPTIONS))
def test_every_sampling_option_changes_the_key(name: str) -> None:
    base = GenerationOptions(temperature=0.0)
    value = CHANGED_OPTIONS[name]
    if name == "temperature":
        value = 0.7
    changed = dataclasses.replace(base, **{name: value})
    assert exact_key(chat("hi", options=changed)) != exact_key(chat("hi", options=base))
    assert semantic_scope(chat("hi", options=changed)) != semantic_scope(chat("hi", options=base))


@pytest.mark.parametrize(
    "change",
    [
        {"tenant": "tenant-b"},
        {"group": "gpt-large"},
        {"namespace": "docs"},
        {"system": "Answer in French."},
        {"history": [("user", "earlier"), ("assistant", "reply")]},
    ],
)
def test_tenant_group_namespace_and_context_change_the_key(change: dict[str, Any]) -> None:
    assert exact_key(chat("What is 2+2?", **change)) != exact_key(chat("What is 2+2?"))


def test_the_key_ignores_dict_order_and_int_versus_float() -> None:
    first = chat(
        "hi", options=GenerationOptions(temperature=0, tools=(TOOL,), response_format={"a": 1, "b": 2})
    )
    second = chat(
        "hi",
        options=GenerationOptions(temperature=0.0, tools=(TOOL_REORDERED,), response_format={"b": 2, "a": 1}),
    )
    assert exact_key(first) == exact_key(second)
    assert len(exact_key(first)) == 64


def test_tool_fields_of_messages_are_part_of_the_key() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
    base = (ChatMessage("user", "weather?"), ChatMessage("assistant", "", tool_calls=(call,)))
    with_result = (*base, ChatMessage("tool", "sunny", tool_call_id="call_1"))
    other_result = (*base, ChatMessage("tool", "sunny", tool_call_id="call_2"))
    keys = {
        exact_key(CacheRequest("g", "t", messages, None, GenerationOptions(temperature=0)))
        for messages in (base, with_result, other_result)
    }
    assert len(keys) == 3


def test_chat_and_raw_prompt_with_the_same_text_have_different_keys() -> None:
    as_prompt = CacheRequest("g", "tenant-a", None, "hi", GenerationOptions(temperature=0))
    as_chat = chat("hi", group="g")
    assert exact_key(as_prompt) != exact_key(as_chat)


@pytest.mark.parametrize(
    ("options", "opt_in", "cacheable"),
    [
        (GenerationOptions(temperature=0.0), False, True),
        (GenerationOptions(temperature=0.0, n=3), False, True),  # greedy: the n copies are identical
        (GenerationOptions(temperature=0.8, seed=1), False, True),
        (GenerationOptions(temperature=0.8, seed=1, n=3), False, True),
        (GenerationOptions(temperature=0.8), False, False),  # a fresh sample each time
        (GenerationOptions(temperature=0.8), True, True),  # ... unless the client asked for replays
        (GenerationOptions(temperature=0.8, n=2), True, False),  # n different samples, never one stored set
        (GenerationOptions(temperature=0.0, logprobs=True), True, False),  # stored answers have no logprobs
    ],
)
def test_cacheability(options: GenerationOptions, opt_in: bool, cacheable: bool) -> None:
    assert is_cacheable(chat("hi", options=options, opt_in=opt_in)) is cacheable


def test_a_request_without_messages_or_prompt_is_not_cacheable() -> None:
    assert not is_cacheable(CacheRequest("g", "t", None, None, GenerationOptions(temperature=0)))


def test_semantic_scope_ignores_the_last_question_only() -> None:
    assert semantic_scope(chat("What is the capital of France?")) == semantic_scope(
        chat("capital of France?")
    )
    assert semantic_scope(chat("q", system="a")) != semantic_scope(chat("q", system="b"))
    assert semantic_scope(chat("q", history=[("user", "x"), ("assistant", "y")])) != semantic_scope(chat("q"))
    assert semantic_scope(chat("q", tenant="tenant-b")) != semantic_scope(chat("q"))
    assert semantic_scope(chat("q"), "model-a") != semantic_scope(chat("q"), "model-b")


def test_semantic_text_is_the_last_user_message_of_a_short_chat() -> None:
    assert semantic_text(chat("  What is the capital of France?  ")) == "What is the capital of France?"
    assert semantic_text(chat("x" * (MAX_SEMANTIC_CHARS + 1))) == ""
    assert semantic_text(CacheRequest("g", "t", None, "raw prompt", GenerationOptions(temperature=0))) == ""
    assert semantic_text(chat("   ")) == ""
    ends_with_tool = CacheRequest(
        "g",
        "t",
        (ChatMessage("user", "q"), ChatMessage("tool", "42", tool_call_id="c")),
        None,
        GenerationOptions(),
    )
    assert semantic_text(ends_with_tool) == ""
