"""The shared vocabulary: backend-neutral messages, options, inputs, completions, usage, stream events.

The ground floor: every layer speaks these types and this module imports nothing of the app.
Conversions to and from each wire format live in that surface's or provider's module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

FinishReason = Literal["stop", "length", "cancelled", "tool_calls", "content_filter"]


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str
    # Tool calling, passed through to providers that support it (OpenAI wire shapes, verbatim).
    tool_calls: tuple[dict[str, Any], ...] = ()
    tool_call_id: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class NativeRequest:
    """A client's own body, for an upstream that speaks the client's protocol (``protocol``).

    ``messages`` are the chat messages the surface translated from ``body``: a provider sends ``body``
    as it came only while the request still carries exactly those (the input guardrails or context
    fitting may have rewritten them), and translates the request otherwise. ``headers`` are the
    client's protocol headers (e.g. ``anthropic-beta``), forwarded either way.
    """

    protocol: str
    body: dict[str, Any]
    messages: tuple[ChatMessage, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    translatable: bool = True  # False: ``body`` holds what ``messages`` cannot say (images, ...)


@dataclass(frozen=True)
class GenerationOptions:
    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    n: int = 1
    stop: tuple[str, ...] = ()
    seed: int | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    # The seed API treats max_tokens as an upper bound (chatglm's max_length), not a hard request.
    clamp_max_tokens: bool = False
    # Passed through to providers that support them; others answer 400.
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    logprobs: bool = False
    # Extension (as in vLLM): keep generating past EOS, for benchmarks that need fixed-length replies.
    ignore_eos: bool = False
    # The client's body, for a provider of the same protocol (fields the pipeline does not own).
    native: NativeRequest | None = None


@dataclass(frozen=True)
class ChatInput:
    messages: tuple[ChatMessage, ...]
    options: GenerationOptions = field(default_factory=GenerationOptions)


@dataclass(frozen=True)
class TextInput:
    """A raw prompt (``/v1/completions``): no chat template applied."""

    prompt: str
    options: GenerationOptions = field(default_factory=GenerationOptions)


GenerationInput = ChatInput | TextInput


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    # True when a count is an estimate (an upstream that reported no usage), not a tokenizer's.
    estimated: bool = False
    # Of prompt_tokens, those the upstream served from its prompt cache; of completion_tokens, those
    # it spent reasoning (OpenAI reports both; 0 where a backend does not say).
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Choice:
    index: int
    text: str
    finish_reason: FinishReason
    tool_calls: tuple[dict[str, Any], ...] = ()  # OpenAI shape: {id, type: "function", function: {...}}


@dataclass(frozen=True)
class Completion:
    choices: list[Choice]
    usage: Usage
    # The upstream's own answer where it speaks the client's protocol (Anthropic pass-through): what
    # the choices say and what they cannot (thinking blocks, the stop sequence that matched). Anything
    # that rewrites the choices (output guardrails, the cache) builds a Completion without it.
    native: dict[str, Any] | None = None


@dataclass(frozen=True)
class Delta:
    """A piece of choice ``index``; ``finish_reason`` is set on that choice's last delta."""

    index: int
    text: str
    finish_reason: FinishReason | None = None
    # OpenAI stream fragments ({index, id?, type?, function: {name?, arguments}}), passed through.
    tool_calls: tuple[dict[str, Any], ...] = ()


StreamEvent = Delta | Usage
