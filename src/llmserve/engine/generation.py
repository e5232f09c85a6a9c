"""One request's decoding: token choice, text, stop conditions; and the single-sequence decode loop.

``Decoding`` is the per-request state the batch scheduler keeps for every row. ``generate_steps`` runs
one request alone with its own KV cache: the reference the batched scheduler must match token for
token (tests hold it to that), and the path for models whose cache cannot be batched.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch

from llmserve.engine.loader import LoadedModel
from llmserve.engine.sampling import SamplingParams, choose_next_token, make_generator
from llmserve.engine.text import IncrementalDetokenizer, StopMatcher

FinishReason = Literal["stop", "length", "cancelled"]


@dataclass(frozen=True)
class Step:
    """Text that became safe to emit; the last step of a generation carries ``finish_reason``."""

    text: str
    completion_tokens: int
    finish_reason: FinishReason | None = None


class Decoding:
    """Turns one request's tokens into steps and decides when it ends (EOS, stop string, max_tokens)."""

    def __init__(self, loaded: LoadedModel, params: SamplingParams) -> None:
        self.params = params
        self.eos_ids = (
            params.stop_token_ids if params.ignore_eos else loaded.eos_token_ids | params.stop_token_ids
        )
        self.generated: list[int] = []
        self.finished = params.max_tokens <= 0
        # Plain argmax rows can share one batched argmax instead of a per-row sampling call.
        self.plain_greedy = params.greedy and (
            params.presence_penalty == 0
            and params.frequency_penalty == 0
            and params.repetition_penalty == 1.0
        )
        self._detokenizer = IncrementalDetokenizer(loaded.tokenizer)
        self._stopper = StopMatcher(params.stop)
        self._generator = make_generator(params.seed, loaded.device)

    def choose(self, logits: torch.Tensor) -> int:
        """Picks the next token from this request's 1-D logits row with its own generator."""
        return choose_next_token(logits, self.params, self._generator, self.generated)

    def accept(self, token: int) -> list[Step]:
        """Records ``token``; returns the steps it makes emittable, the last one final if it ended."""
        self.generated.append(token)
        count = len(self.generated)
        if token in self.eos_ids:
            return [self._final("stop")]
        piece = self._stopper.feed(self._detokenizer.push(token))
        if self._stopper.stopped:
            self.finished = True
            return [Step(piece, count, "stop")]
        steps = [Step(piece, count)] if piece else []
        if count >= self.params.max_tokens:
            steps.append(self._final("length"))
        return steps

    def cancelled(self) -> Step:
        self.finished = True
        return Step("", len(self.generated), "cancelled")

    def empty(self) -> Step:
        """The final step of a request that may generate nothing (``max_tokens`` 0)."""
        return self._final("length")

    def _final(self, reason: FinishReason) -> Step:
        self.finished = True
        tail = self._stopper.feed(self._detokenizer.flush())
        tail += self._stopper.flush()
        return Step(tail, len(self.generated), "stop" if self._stopper.stopped else reason)


def prefill_kwargs(model: Any) -> dict[str, Any]:
    """Asks for the last position's logits only, where the model takes it: a prompt's other rows of
    logits (prompt length x vocabulary, 150k wide for Qwen) are never used."""
    forward = getattr(model, "forward", None)
    try:
        accepts = forward is not None and "logits_to_keep" in inspect.signature(forward).parameters
    except (TypeError, ValueError):  # builtins and some wrappers have no signature
        accepts = False
    return {"logits_to_keep": 1} if accepts else {}


def generate_steps(
    loaded: LoadedModel,
    prompt_ids: list[int],
    params: SamplingParams,
    cancelled: Callable[[], bool],
) -> Iterator[Step]:
    decoding = Decoding(loaded, params)
    if decoding.finished:
        yield decoding.empty()
        return
    with torch.inference_mode():
        inputs = torch.tensor([prompt_ids], device=loaded.device)
        past: Any = None
        extra = prefill_kwargs(loaded.model)
        while not decoding.finished:
            if cancelled():
                yield decoding.cancelled()
                return
            output = loaded.model(input_ids=inputs, past_key_values=past, use_cache=True, **extra)
            extra = {}
            past = output.past_key_values
            token = decoding.choose(output.logits[0, -1])
            yield from decoding.accept(token)
            inputs = torch.tensor([[token]], device=loaded.device)
