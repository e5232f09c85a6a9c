"""Sampling: greedy is argmax, seeds reproduce without global state, top-k/top-p restrict the choice."""

from __future__ import annotations

import torch

from llmserve.engine.sampling import SamplingParams, apply_penalties, choose_next_token, make_generator

CPU = torch.device("cpu")


def draws(params: SamplingParams, logits: torch.Tensor, count: int = 200) -> list[int]:
    generator = make_generator(params.seed, CPU)
    return [choose_next_token(logits, params, generator, []) for _ in range(count)]


def test_temperature_zero_is_argmax() -> None:
    logits = torch.tensor([0.1, 3.0, 2.9, -1.0])
    assert set(draws(SamplingParams(max_tokens=1, temperature=0.0), logits, 20)) == {1}


def test_same_seed_same_draws_regardless_of_global_rng() -> None:
    logits = torch.zeros(50)
    params = SamplingParams(max_tokens=1, temperature=1.0, seed=1234)
    first = draws(params, logits)
    torch.manual_seed(999)  # global state must not matter
    torch.rand(10)
    assert draws(params, logits) == first
    assert draws(SamplingParams(max_tokens=1, temperature=1.0, seed=4321), logits) != first


def test_top_k_limits_the_candidates() -> None:
    logits = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0])
    assert set(draws(SamplingParams(max_tokens=1, top_k=2, seed=7), logits)) <= {0, 1}


def test_top_p_keeps_the_smallest_sufficient_prefix() -> None:
    probs = torch.tensor([0.6, 0.3, 0.05, 0.05])
    chosen = set(draws(SamplingParams(max_tokens=1, top_p=0.8, seed=3), probs.log()))
    assert chosen == {0, 1}


def test_top_p_always_keeps_the_best_token() -> None:
    logits = torch.tensor([10.0, 0.0, 0.0])
    assert set(draws(SamplingParams(max_tokens=1, top_p=0.01, seed=5), logits, 30)) == {0}


def test_frequency_and_presence_penalties_lower_repeated_tokens() -> None:
    logits = torch.tensor([1.0, 1.0, 1.0])
    params = SamplingParams(max_tokens=1, presence_penalty=0.5, frequency_penalty=0.25)
    penalised = apply_penalties(logits, [0, 0, 1], params)
    assert torch.allclose(penalised, torch.tensor([1.0 - 0.5 - 0.5, 1.0 - 0.25 - 0.5, 1.0]))
    assert torch.equal(logits, torch.tensor([1.0, 1.0, 1.0]))  # the caller's tensor is untouched
