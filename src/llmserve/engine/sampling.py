"""Sampling parameters and next-token selection.

Each request carries its own ``torch.Generator``: a ``seed`` reproduces a reply without touching the
process-wide RNG, so concurrent requests never disturb each other's randomness.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    repetition_penalty: float = 1.0
    stop_token_ids: frozenset[int] = field(default_factory=frozenset)
    ignore_eos: bool = False

    @property
    def greedy(self) -> bool:
        return self.temperature <= 1e-5 or self.top_k == 1


def make_generator(seed: int | None, device: torch.device) -> torch.Generator:
    generator = torch.Generator(device=device)
    generator.manual_seed(seed if seed is not None else secrets.randbits(63))
    return generator


def apply_penalties(logits: torch.Tensor, generated: list[int], params: SamplingParams) -> torch.Tensor:
    """OpenAI-style presence/frequency penalties and HF-style repetition penalty, on one row of logits."""
    if not generated or (
        params.presence_penalty == 0 and params.frequency_penalty == 0 and params.repetition_penalty == 1.0
    ):
        return logits
    ids, counts = torch.tensor(generated, device=logits.device).unique(return_counts=True)
    logits = logits.clone()
    if params.repetition_penalty != 1.0:
        picked = logits[ids]
        logits[ids] = torch.where(
            picked > 0, picked / params.repetition_penalty, picked * params.repetition_penalty
        )
    logits[ids] -= params.frequency_penalty * counts.to(logits.dtype) + params.presence_penalty
    return logits


def choose_next_token(
    logits: torch.Tensor, params: SamplingParams, generator: torch.Generator, generated: list[int]
) -> int:
    """Pick one token id from a 1-D logits row."""
    logits = apply_penalties(logits.float(), generated, params)
    if params.greedy:
        return int(torch.argmax(logits).item())
    logits = logits / params.temperature
    if params.top_k > 0:
        k = min(params.top_k, logits.shape[-1])
        kth_best = torch.topk(logits, k).values[-1]
        logits = logits.masked_fill(logits < kth_best, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if params.top_p < 1.0:
        sorted_probs, sorted_ids = torch.sort(probs, descending=True)
        cumulative = torch.cumsum(sorted_probs, dim=-1)
        # Keep the smallest prefix whose mass reaches top_p (always at least the best token).
        outside = cumulative - sorted_probs > params.top_p
        sorted_probs = sorted_probs.masked_fill(outside, 0.0)
        choice = torch.multinomial(sorted_probs, 1, generator=generator)
        return int(sorted_ids[choice].item())
    return int(torch.multinomial(probs, 1, generator=generator).item())
