"""The decode loop: one request, token by token, with a KV cache. Runs in the engine's worker thread."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

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


def generate_steps(
    loaded: LoadedModel,
    prompt_ids: list[int],
    params: SamplingParams,
    cancelled: Callable[[], bool],
) -> Iterator[Step]:
    eos_ids = params.stop_token_ids if params.ignore_eos else loaded.eos_token_ids | params.stop_token_ids
    detokenizer = IncrementalDetokenizer(loaded.tokenizer)
    stopper = StopMatcher(params.stop)
    generator = make_generator(params.seed, loaded.device)
    generated: list[int] = []
    finish: FinishReason = "length"
    with torch.inference_mode():
        inputs = torch.tensor([prompt_ids], device=loaded.device)
        past = None
        while len(generated) < params.max_tokens:
            if cancelled():
                yield Step("", len(generated), "cancelled")
                return
            output = loaded.model(input_ids=inputs, past_key_values=past, use_cache=True)
            past = output.past_key_values
            token = choose_next_token(output.logits[0, -1], params, generator, generated)
            generated.append(token)
            if token in eos_ids:
                finish = "stop"
                break
            piece = stopper.feed(detokenizer.push(token))
            if stopper.stopped:
                yield Step(piece, len(generated), "stop")
                return
            if piece:
                yield Step(piece, len(generated))
            inputs = torch.tensor([[token]], device=loaded.device)
    tail = stopper.feed(detokenizer.flush())
    tail += stopper.flush()
    yield Step(tail, len(generated), "stop" if stopper.stopped else finish)
