"""The in-process provider: a Hugging Face model run by the local engine."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from llmserve.config import ModelDeployment
from llmserve.engine.loader import LoadedModel
from llmserve.engine.manager import ModelManager
from llmserve.engine.offload import run_sized
from llmserve.engine.sampling import SamplingParams
from llmserve.engine.tokenize import encode_ids
from llmserve.engine.worker import LocalEngine
from llmserve.errors import ContextLengthExceeded, InvalidRequest
from llmserve.types import (
    ChatInput,
    Choice,
    Completion,
    Delta,
    GenerationInput,
    GenerationOptions,
    StreamEvent,
    Usage,
)


def _plain_chat_prompt(messages: list[dict[str, str]]) -> str:
    """For tokenizers that ship no chat template (base models): a readable transcript."""
    lines = [f"{m['role']}: {m['content']}" for m in messages]
    return "\n".join([*lines, "assistant:"])


def request_chars(request: GenerationInput) -> int:
    if isinstance(request, ChatInput):
        return sum(len(m.content) for m in request.messages)
    return len(request.prompt)


async def prompt_ids(loaded: LoadedModel, request: GenerationInput) -> list[int]:
    """``render_prompt_ids`` off the event loop once the input is large (engine/offload.py)."""
    return await run_sized(request_chars(request), render_prompt_ids, loaded, request)


def render_prompt_ids(loaded: LoadedModel, request: GenerationInput) -> list[int]:
    """Blocking (seconds for megabytes of text): from a coroutine, call ``prompt_ids``."""
    tokenizer = loaded.tokenizer
    if isinstance(request, ChatInput):
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        if getattr(tokenizer, "chat_template", None):
            # Rendered, then encoded as apply_chat_template(tokenize=True) does (no special tokens
            # added: the template writes them), but in bounded memory for a long chat.
            rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            return encode_ids(tokenizer, str(rendered), add_special_tokens=False)
        return encode_ids(tokenizer, _plain_chat_prompt(messages), add_special_tokens=True)
    return encode_ids(tokenizer, request.prompt, add_special_tokens=True) or _start_ids(tokenizer)


def _start_ids(tokenizer: Any) -> list[int]:
    """What an empty completion prompt generates from, as OpenAI does: the start-of-text token, or the
    end-of-text one for tokenizers that have none (GPT-2's ``<|endoftext|>`` is both). A model cannot
    run on zero tokens."""
    for token_id in (getattr(tokenizer, "bos_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if token_id is not None:
            return [int(token_id)]
    raise InvalidRequest("The prompt is empty and this model has no start token", param="prompt")


class LocalProvider:
    def __init__(self, deployment: ModelDeployment, engine: LocalEngine) -> None:
        self.name = deployment.name
        self.deployment = deployment
        self.engine = engine

    @property
    def manager(self) -> ModelManager:
        return self.engine.manager

    @property
    def in_flight(self) -> int:
        return self.engine.pending

    async def count_tokens(self, request: GenerationInput) -> int:
        return len(await prompt_ids(await self.engine.manager.get(), request))

    async def complete(self, request: GenerationInput) -> Completion:
        texts: dict[int, list[str]] = {}
        finishes: dict[int, Any] = {}
        usage = Usage(0, 0)
        async for event in self.stream(request):
            if isinstance(event, Usage):
                usage = event
                continue
            texts.setdefault(event.index, []).append(event.text)
            if event.finish_reason is not None:
                finishes[event.index] = event.finish_reason
        choices = [Choice(i, "".join(parts), finishes.get(i, "stop")) for i, parts in sorted(texts.items())]
        return Completion(choices=choices, usage=usage)

    async def stream(self, request: GenerationInput) -> AsyncIterator[StreamEvent]:
        self._check_supported(request.options)
        loaded = await self.engine.manager.get()
        ids = await prompt_ids(loaded, request)
        max_tokens = self._fit_max_tokens(len(ids), request.options, loaded.context_window)
        completion_tokens = 0
        for index in range(request.options.n):
            params = self._sampling_params(request.options, max_tokens, index)
            async for step in self.engine.stream(ids, params):
                completion_tokens += 0 if step.finish_reason is None else step.completion_tokens
                if step.text or step.finish_reason is not None:
                    finish = None if step.finish_reason is None else step.finish_reason
                    yield Delta(index, step.text, finish)
        yield Usage(prompt_tokens=len(ids), completion_tokens=completion_tokens)

    def _check_supported(self, options: GenerationOptions) -> None:
        if options.tools:
            raise InvalidRequest(f"Model '{self.name}' does not support tools", param="tools")
        if options.response_format and options.response_format.get("type", "text") != "text":
            raise InvalidRequest(
                f"Model '{self.name}' supports only response_format type 'text'", param="response_format"
            )
        if options.logprobs:
            raise InvalidRequest(f"Model '{self.name}' does not return logprobs", param="logprobs")

    def _fit_max_tokens(self, prompt_tokens: int, options: GenerationOptions, context_window: int) -> int:
        available = context_window - prompt_tokens
        requested = options.max_tokens
        if requested is not None and options.clamp_max_tokens and available > 0:
            requested = min(requested, available)
        if requested is None:
            if available <= 0:
                raise _context_error(context_window, prompt_tokens, 0)
            return min(self.deployment.default_max_tokens, available)
        if requested > available:
            raise _context_error(context_window, prompt_tokens, requested)
        return requested

    @staticmethod
    def _sampling_params(options: GenerationOptions, max_tokens: int, index: int) -> SamplingParams:
        return SamplingParams(
            max_tokens=max_tokens,
            temperature=options.temperature,
            top_p=options.top_p,
            top_k=options.top_k,
            # n choices from one seed must differ from each other yet stay reproducible.
            seed=None if options.seed is None else options.seed + index,
            stop=options.stop,
            presence_penalty=options.presence_penalty,
            frequency_penalty=options.frequency_penalty,
            ignore_eos=options.ignore_eos,
        )

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        raise InvalidRequest(f"Model '{self.name}' does not support embeddings", param="model")

    async def close(self) -> None:
        await self.engine.close()


def _context_error(context_window: int, prompt_tokens: int, completion_tokens: int) -> ContextLengthExceeded:
    # OpenAI's wording, which SDKs and client libraries match on.
    return ContextLengthExceeded(
        f"This model's maximum context length is {context_window} tokens. However, you requested "
        f"{prompt_tokens + completion_tokens} tokens ({prompt_tokens} in the messages, "
        f"{completion_tokens} in the completion). Please reduce the length of the messages or completion.",
        param="messages",
    )
