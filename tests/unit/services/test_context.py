"""Context fitting: a history too long for the window loses its oldest turns, never its system
messages or its last question, and long histories are fitted with few tokenizer calls."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import pytest

from llmserve.config import ModelDeployment
from llmserve.engine.loader import LoadedModel, load_model
from llmserve.providers.local import render_prompt_ids
from llmserve.services.context import completion_reserve, fit_messages
from llmserve.types import ChatInput, ChatMessage


class WordCounter:
    """A stand-in tokenizer: a token per word plus 3 of framing per message; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, messages: Sequence[ChatMessage]) -> int:
        self.calls += 1
        return sum(len(m.content.split()) + 3 for m in messages)


class TemplateCounter:
    """The bundled tiny-chat tokenizer over its chat template: what the local provider counts."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.calls = 0

    async def __call__(self, messages: Sequence[ChatMessage]) -> int:
        self.calls += 1
        return len(render_prompt_ids(self.loaded, ChatInput(tuple(messages))))


@pytest.fixture(scope="module")
def tiny_chat() -> LoadedModel:
    return load_model(ModelDeployment(name="tiny-chat", model="tiny-chat", device="cpu"))


def turns(count: int, words: int = 10, text: str = "word") -> list[ChatMessage]:
    messages = []
    for i in range(count):
        messages.append(ChatMessage("user", f"question {i} " + " ".join([text] * words)))
        messages.append(ChatMessage("assistant", f"answer {i} " + " ".join([text] * words)))
    return messages


async def assert_latest_turns_that_fit(
    original: list[ChatMessage], fitted: list[ChatMessage], count: WordCounter | TemplateCounter, budget: int
) -> None:
    """Fits, and is the longest run of latest turns that fits: one more turn would not."""
    assert await count(fitted) <= budget
    kept = [m for m in fitted if m.role != "system"]
    start = original.index(kept[0])
    assert original[start:] == kept and kept[0].role == "user"
    earlier = [i for i in range(start) if original[i].role == "user"]
    if earlier:
        one_more = [m for i, m in enumerate(original) if m.role == "system" or i >= earlier[-1]]
        assert await count(one_more) > budget


async def test_a_history_that_fits_is_left_alone() -> None:
    count = WordCounter()
    messages = [ChatMessage("system", "be brief"), *turns(3), ChatMessage("user", "last")]
    assert await fit_messages(messages, count, window=4096, reserve=256, strategy="truncate_oldest") == (
        messages,
        0,
    )
    assert count.calls == 1


async def test_oldest_turns_go_first_and_system_messages_stay() -> None:
    count = WordCounter()
    system = ChatMessage("system", "You are terse.")
    pinned = ChatMessage("system", "Answer in English.")
    messages = [system, *turns(5)[:4], pinned, *turns(5)[4:], ChatMessage("user", "and now?")]
    fitted, dropped = await fit_messages(messages, count, window=100, reserve=30, strategy="truncate_oldest")
    assert fitted[:2] == [system, pinned]
    assert fitted[-1] == ChatMessage("user", "and now?")
    assert dropped == len(messages) - len(fitted) > 0
    await assert_latest_turns_that_fit(messages, fitted, count, budget=70)


async def test_the_last_user_message_is_kept_even_when_nothing_fits() -> None:
    count = WordCounter()
    question = ChatMessage("user", "x " * 500)
    messages = [ChatMessage("system", "sys"), *turns(4), question]
    fitted, dropped = await fit_messages(messages, count, window=100, reserve=10, strategy="truncate_oldest")
    # Trimmed as far as allowed; the provider then answers the 400 for what is left.
    assert fitted == [ChatMessage("system", "sys"), question]
    assert dropped == 8


async def test_tool_calls_stay_with_their_results() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}
    messages = [
        ChatMessage("user", "old " * 40),
        ChatMessage("user", "weather in Paris?"),
        ChatMessage("assistant", "", tool_calls=(call,)),
        ChatMessage("tool", "sunny " * 20, tool_call_id="call_1"),
        ChatMessage("assistant", "It is sunny."),
        ChatMessage("user", "and tomorrow?"),
    ]
    count = WordCounter()
    fitted, dropped = await fit_messages(messages, count, window=60, reserve=10, strategy="truncate_oldest")
    assert fitted == messages[1:] and dropped == 1
    fitted, _ = await fit_messages(messages, count, window=20, reserve=10, strategy="truncate_oldest")
    assert fitted == [messages[-1]]  # the call and its result went together


async def test_strategy_error_leaves_the_messages_for_the_provider_to_refuse() -> None:
    count = WordCounter()
    messages = turns(50)
    assert await fit_messages(messages, count, window=10, reserve=5, strategy="error") == (messages, 0)
    assert count.calls == 0


async def test_500_turns_fit_with_a_logarithmic_number_of_tokenizer_calls(tiny_chat: LoadedModel) -> None:
    count = TemplateCounter(tiny_chat)
    messages = [ChatMessage("system", "You are a helpful assistant."), *turns(500, words=20)]
    messages.append(ChatMessage("user", "Summarise our chat."))
    started = time.perf_counter()
    fitted, dropped = await fit_messages(messages, count, window=512, reserve=128, strategy="truncate_oldest")
    elapsed = time.perf_counter() - started
    assert fitted[0] == messages[0] and fitted[-1] == messages[-1] and dropped > 900
    assert count.calls <= 3 + math.ceil(math.log2(500))
    assert elapsed < 10  # seconds; about 0.1 s on one core, the bound only catches O(n²) work
    await assert_latest_turns_that_fit(messages, fitted, count, budget=512 - 128)


async def test_chinese_history_is_counted_with_the_real_tokenizer(tiny_chat: LoadedModel) -> None:
    count = TemplateCounter(tiny_chat)
    history = turns(30, words=8, text="今天天气很好我们去公园散步吧")
    messages = [ChatMessage("system", "用中文回答。"), *history, ChatMessage("user", "明天呢？")]
    fitted, dropped = await fit_messages(messages, count, window=512, reserve=64, strategy="truncate_oldest")
    assert fitted[0].content == "用中文回答。" and fitted[-1].content == "明天呢？"
    assert 0 < dropped < len(history)
    await assert_latest_turns_that_fit(messages, fitted, count, budget=512 - 64)


def test_completion_reserve_keeps_room_for_the_reply() -> None:
    # An explicit max_tokens is demanded in full; without one the provider fits the reply itself.
    assert completion_reserve(300, 512, 4096, clamp=False) == 300
    assert completion_reserve(None, 512, 4096, clamp=False) == 512
    assert completion_reserve(None, 512, 512, clamp=False) == 128
    assert completion_reserve(2048, 512, 512, clamp=True) == 128
