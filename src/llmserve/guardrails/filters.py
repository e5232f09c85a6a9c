"""The guardrails as the chat pipeline uses them: input checks before routing, output masking after.

Order of the input checks (the first that refuses wins): number of messages (400), length of each
message (413), blocked patterns (400), prompt injection (400 in ``block`` mode), PII (400 in ``block``
mode, else masked). A refusal carries only the rule that fired and, where useful, the message's index:
never the text, nor the pattern's content, and nothing here logs message text.

What is looked at: ``content`` of every message for size, blocked patterns and PII (system prompts
included: PII must not reach the provider from anywhere); for prompt injection only what the caller's
users write, i.e. every role but ``system``, ``developer`` and ``assistant``. Tool-call arguments and
names are not inspected.

``pii_entities`` empty means every entity (``pii_input``/``pii_output`` say whether PII is handled at
all), so turning masking on without a list never silently masks nothing.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from llmserve.config import GuardrailSettings, PiiEntity
from llmserve.errors import GuardrailViolation
from llmserve.guardrails.injection import injection_score
from llmserve.guardrails.patterns import compile_blocked_patterns, first_blocked
from llmserve.guardrails.pii import ALL_ENTITIES, OutputMasker, find_pii, mask_pii
from llmserve.types import ChatMessage

# Roles whose text is the operator's or the model's own, not the end user's: not scored for injection.
TRUSTED_ROLES = frozenset({"system", "developer", "assistant"})
OVERRIDABLE = tuple(GuardrailSettings.model_fields)
_ENTITY_NAMES = {
    "email": "an email address",
    "phone": "a phone number",
    "card": "a payment card number",
    "iban": "an IBAN",
    "national_id": "a national identity number",
}
_MAX_PER_KEY = 256  # distinct override sets kept compiled per Guardrails


@dataclass(frozen=True)
class InputVerdict:
    """What passed: the messages to send on (PII masked when configured) and what was noticed."""

    messages: tuple[ChatMessage, ...]
    injection_score: float = 0.0
    flags: list[str] = field(default_factory=list)  # rules that fired without refusing
    masked: dict[str, int] = field(default_factory=dict)  # entity -> how many were masked


@dataclass(frozen=True)
class TextVerdict:
    """``inspect_text``'s answer for a raw prompt (``/v1/completions``)."""

    text: str
    injection_score: float = 0.0
    flags: list[str] = field(default_factory=list)
    masked: dict[str, int] = field(default_factory=dict)


def validate_overrides(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Check a key's guardrail overrides (field name → value) and return them normalised.

    ``ValueError`` names what is wrong: an unknown field, a value of the wrong type or range, a blocked
    pattern that does not compile or could backtrack without bound (by index). Meant for the keys API,
    so a bad override is refused when the key is created, not on its first request.
    """
    unknown = sorted(set(overrides) - set(OVERRIDABLE))
    if unknown:
        raise ValueError(f"unknown guardrail settings {unknown}; known: {sorted(OVERRIDABLE)}")
    try:
        model = GuardrailSettings.model_validate(dict(overrides))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"invalid guardrail settings: {problems}") from None
    compile_blocked_patterns(model.blocked_patterns)
    return model.model_dump(include=set(overrides))


class Guardrails:
    """The input and output filters for one set of settings; cheap to call, built once (patterns are
    compiled here, and an invalid one is a ``ValueError`` naming its index)."""

    def __init__(self, settings: GuardrailSettings) -> None:
        self.settings = settings
        self._patterns = compile_blocked_patterns(settings.blocked_patterns)
        self._entities: frozenset[PiiEntity] = frozenset(settings.pii_entities or ALL_ENTITIES)
        self._per_key: dict[str, Guardrails] = {}

    def for_principal(self, overrides: Mapping[str, Any]) -> Guardrails:
        """These settings with a key's overrides applied (``Principal.guardrails``); kept compiled."""
        if not overrides:
            return self
        cache_key = json.dumps(overrides, sort_keys=True, default=str)
        merged = self._per_key.get(cache_key)
        if merged is None:
            settings = {**self.settings.model_dump(), **validate_overrides(overrides)}
            merged = Guardrails(GuardrailSettings.model_validate(settings))
            if len(self._per_key) >= _MAX_PER_KEY:
                self._per_key.clear()
            self._per_key[cache_key] = merged
        return merged

    # Input

    def check_input(self, messages: Sequence[ChatMessage]) -> InputVerdict:
        """Refuse (``GuardrailViolation``) or pass ``messages``, masked as configured."""
        self._check_count(messages)
        for index, message in enumerate(messages):
            self._check_size_and_patterns(message.content, f"message {index}")
        score, flags = self._injection(
            [m.content for m in messages if m.role not in TRUSTED_ROLES], "the request"
        )
        if self.settings.pii_input == "off":
            return InputVerdict(tuple(messages), score, flags)
        masked: dict[str, int] = {}
        out = []
        for index, message in enumerate(messages):
            text = self._pii_input(message.content, f"message {index}", masked)
            out.append(message if text is message.content else dataclasses.replace(message, content=text))
        return InputVerdict(tuple(out), score, flags, masked)

    def check_text(self, prompt: str) -> str:
        """``check_input`` for a raw prompt (``/v1/completions``): the prompt to send on."""
        return self.inspect_text(prompt).text

    def inspect_text(self, prompt: str) -> TextVerdict:
        """``check_text`` with what was noticed: the same rules as ``check_input`` but the count."""
        self._check_size_and_patterns(prompt, "the prompt")
        score, flags = self._injection([prompt], "the prompt")
        masked: dict[str, int] = {}
        text = prompt if self.settings.pii_input == "off" else self._pii_input(prompt, "the prompt", masked)
        return TextVerdict(text, score, flags, masked)

    def check_size(self, messages: Sequence[ChatMessage] | None, prompt: str | None) -> None:
        """The count and size rules alone, for routes that only measure a request (``/v1/tokenize``,
        ``/v1/estimate``): what chat would refuse is refused there too, before any work."""
        if messages is not None:
            self._check_count(messages)
            for index, message in enumerate(messages):
                self._check_size(message.content, f"message {index}")
        if prompt is not None:
            self._check_size(prompt, "the prompt")

    def _check_count(self, messages: Sequence[ChatMessage]) -> None:
        limit = self.settings.max_messages
        if len(messages) > limit:
            raise GuardrailViolation(
                f"too many messages: {len(messages)}, at most {limit}", rule="max_messages"
            )

    def _check_size(self, text: str, what: str) -> None:
        limit = self.settings.max_message_chars
        if len(text) > limit:
            raise GuardrailViolation(
                f"{what} is too long: {len(text)} characters, at most {limit}",
                rule="max_message_chars",
                status_code=413,
            )

    def _check_size_and_patterns(self, text: str, what: str) -> None:
        self._check_size(text, what)
        hit = first_blocked(self._patterns, text)
        if hit is not None:
            raise GuardrailViolation(f"{what} matches blocked pattern {hit}", rule=f"blocked_pattern:{hit}")

    def _injection(self, texts: Sequence[str], what: str) -> tuple[float, list[str]]:
        mode = self.settings.prompt_injection
        if mode == "off":
            return 0.0, []
        score = max((injection_score(text) for text in texts), default=0.0)
        if score < self.settings.prompt_injection_threshold:
            return score, []
        if mode == "block":
            raise GuardrailViolation(f"{what} looks like a prompt-injection attempt", rule="prompt_injection")
        return score, ["prompt_injection"]

    def _pii_input(self, text: str, what: str, masked: dict[str, int]) -> str:
        if self.settings.pii_input == "block":
            spans = find_pii(text, self._entities)
            if spans:
                entity = spans[0].entity
                raise GuardrailViolation(f"{what} contains {_ENTITY_NAMES[entity]}", rule=f"pii:{entity}")
            return text
        masked_text, counts = mask_pii(text, self._entities)
        for name, count in counts.items():
            masked[name] = masked.get(name, 0) + count
        return masked_text

    # Output

    @property
    def masks_output(self) -> bool:
        return self.settings.pii_output == "mask"

    def mask_output(self, text: str) -> str:
        """A whole (non-streamed) answer with PII masked, if ``pii_output`` is ``mask``."""
        return mask_pii(text, self._entities)[0] if self.masks_output else text

    def output_masker(self) -> OutputMasker:
        """A masker for one streamed choice; passes text straight through when output masking is off."""
        return OutputMasker(self._entities if self.masks_output else ())
