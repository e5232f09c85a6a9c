from __future__ import annotations

import pytest

from llmserve.config import ComplexityRouting, RouterSettings
from llmserve.routing.complexity import ComplexityClassifier, classify
from llmserve.routing.router import Router
from llmserve.types import ChatInput, ChatMessage, TextInput

TIERS = ComplexityRouting(
    simple="small", medium="mid", complex="big", long_prompt_chars=500, short_prompt_chars=50
)


def chat(text: str, *history: str) -> ChatInput:
    messages = [ChatMessage("user" if i % 2 == 0 else "assistant", h) for i, h in enumerate(history)]
    return ChatInput((*messages, ChatMessage("user", text)))


@pytest.mark.parametrize(
    ("text", "tier"),
    [
        ("hi there", "simple"),
        ("What is the capital of France, and roughly how many people live in it today?", "medium"),
        ("x" * 500, "complex"),
        ("Analyze this", "complex"),
        ("please EXPLAIN WHY the sky is blue", "complex"),
        ("Walk me through it step by step", "complex"),
        ("请分析一下这段代码", "complex"),
        ("证明根号二是无理数", "complex"),
        ("为什么天是蓝的", "complex"),
        ("你好", "simple"),
        ("How can I improve my sleep?", "simple"),  # "prove" inside "improve" is no keyword
        ("Designing a cache", "complex"),
    ],
)
def test_classify(text: str, tier: str) -> None:
    assert classify(chat(text), TIERS) == tier


def test_the_current_ask_decides_not_the_history() -> None:
    long_history = ("analyze " + "y" * 600, "sure")
    assert classify(chat("thanks!", *long_history), TIERS) == "simple"
    assert classify(TextInput("prove it"), TIERS) == "complex"


def test_requirements_win_when_configured() -> None:
    tiers = TIERS.model_copy(update={"low_latency": "fast", "high_quality": "best"})
    assert classify(chat("analyze " * 100), tiers, "low_latency") == "low_latency"
    assert classify(chat("hi"), tiers, "high_quality") == "high_quality"
    assert classify(chat("hi"), TIERS, "high_quality") == "simple"  # not configured: ignored
    assert classify(chat("hi"), tiers, "something-else") == "simple"


def test_missing_tier_falls_back_to_the_nearest_configured() -> None:
    only_big = ComplexityClassifier(ComplexityRouting(complex="big"))
    assert only_big.group_for("simple") == "big"
    assert ComplexityClassifier(ComplexityRouting(simple="small", complex="big")).group_for("medium") == "big"
    assert ComplexityClassifier(ComplexityRouting(simple="small")).group_for("complex") == "small"
    assert ComplexityClassifier(ComplexityRouting()).group_for("medium") is None


def test_router_resolves_auto_and_passes_other_names_through() -> None:
    router = Router({}, RouterSettings(complexity=TIERS))
    assert router.resolve_group("auto", chat("hi"), None, "default") == "small"
    assert router.resolve_group("auto", chat("分析市场"), None, "default") == "big"
    assert router.resolve_group("gpt-x", chat("分析市场"), None, "default") == "gpt-x"
    assert router.resolve_group(None, chat("hi"), None, "default") == "default"
    unconfigured = Router({}, RouterSettings())
    assert unconfigured.resolve_group("auto", chat("hi"), None, "default") == "default"
