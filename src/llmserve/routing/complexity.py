"""Complexity routing: the model ``auto`` goes to a cheap, medium or strong group by how hard it looks.

The signal is the current ask (the last user message of a chat, the whole prompt of a completion):
its length and whether it names a complex task ("analyze", "step by step", "证明", ...). A long
history behind a short question stays simple here; if it does not fit the simple group's window,
``context_window_fallbacks`` moves it on.
"""

from __future__ import annotations

import re
from typing import Literal

from llmserve.config import ComplexityRouting
from llmserve.types import ChatInput, GenerationInput

Tier = Literal["simple", "medium", "complex", "low_latency", "high_quality"]
REQUIREMENT_TIERS: tuple[Tier, ...] = ("low_latency", "high_quality")
# Where a tier's group is not configured, the nearest configured tier answers (stronger first when
# equally near: a too-strong model costs money, a too-weak one costs the answer).
NEAREST_TIERS: dict[Tier, tuple[Tier, ...]] = {
    "simple": ("simple", "medium", "complex"),
    "medium": ("medium", "complex", "simple"),
    "complex": ("complex", "medium", "simple"),
    "low_latency": ("low_latency", "simple", "medium", "complex"),
    "high_quality": ("high_quality", "complex", "medium", "simple"),
}


def prompt_text(request: GenerationInput) -> str:
    if isinstance(request, ChatInput):
        for message in reversed(request.messages):
            if message.role == "user":
                return message.content
        return "\n".join(message.content for message in request.messages)
    return request.prompt


def keyword_pattern(keywords: list[str]) -> re.Pattern[str] | None:
    """One case-insensitive pattern. A Latin keyword must start a word ("prove" is not in "improve");
    CJK text has no word breaks, so those match anywhere."""
    parts = []
    for keyword in keywords:
        folded = keyword.strip().casefold()
        if not folded:
            continue
        escaped = re.escape(folded)
        parts.append(rf"(?<![a-z0-9]){escaped}" if folded[0].isascii() and folded[0].isalnum() else escaped)
    return re.compile("|".join(parts)) if parts else None


class ComplexityClassifier:
    def __init__(self, settings: ComplexityRouting) -> None:
        self.settings = settings
        self._keywords = keyword_pattern(settings.complex_keywords)

    def classify(self, request: GenerationInput, requirements: str | None = None) -> Tier:
        settings = self.settings
        for tier in REQUIREMENT_TIERS:
            if requirements == tier and getattr(settings, tier) is not None:
                return tier
        text = prompt_text(request)
        has_keyword = self._keywords is not None and self._keywords.search(text.casefold()) is not None
        if has_keyword or len(text) >= settings.long_prompt_chars:
            return "complex"
        if len(text) <= settings.short_prompt_chars:
            return "simple"
        return "medium"

    def group_for(self, tier: Tier) -> str | None:
        """The group configured for ``tier``, else for the nearest configured tier; None if none is."""
        for candidate in NEAREST_TIERS[tier]:
            group: str | None = getattr(self.settings, candidate)
            if group is not None:
                return group
        return None


def classify(request: GenerationInput, settings: ComplexityRouting, requirements: str | None = None) -> Tier:
    return ComplexityClassifier(settings).classify(request, requirements)
