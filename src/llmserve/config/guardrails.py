"""Input and output filters: size limits, blocked patterns, prompt injection, PII."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from llmserve.config.base import StrictModel

PiiEntity = Literal["email", "phone", "card", "iban", "national_id"]


class GuardrailSettings(StrictModel):
    max_messages: int = Field(512, gt=0, description="More messages in one request → 400")
    max_message_chars: int = Field(200_000, gt=0, description="A longer message → 413")
    blocked_patterns: list[str] = Field(default_factory=list, description="Regexes; a match → 400")
    prompt_injection: Literal["off", "flag", "block"] = "off"
    prompt_injection_threshold: float = Field(0.7, gt=0, le=1)
    pii_entities: list[PiiEntity] = Field(default_factory=list, description="What PII detection looks for")
    pii_input: Literal["off", "mask", "block"] = "off"
    pii_output: Literal["off", "mask"] = "off"
