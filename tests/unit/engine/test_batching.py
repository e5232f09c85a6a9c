"""Continuous batching on the bundled model: the same replies as one at a time, delivered together.

The reference is ``generate_steps``, which runs one request alone with its own KV cache (what the
engine did before batching). Batched replies must match it exactly: greedy text token for token,
seeded sampling with the same seed, stop strings, EOS and max_tokens, even when requests join a
running batch late and leave it early.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, replace
from typing import Any, cast

import pytest
import torch
from pydantic import ValidationError

from llmserve.config import BUNDLED_MODEL_ID, EngineSettings, ModelDeployment
from llmserve.engine.generation import Step, generate_steps
from llmserve.engine.loader import LoadedModel
from llmserve.engine.manager import ModelManager
from llmserve.engine.sampling import SamplingParams
from llmserve.engine.worker import LocalEngine
from tests.polling import eventually

QUESTIONS = [
    "hi",
    "What is your name?",
    "Tell me a story about a dragon who lived in the mountains and loved to read old books.",
    "你好",
    "What is 2 plus 3?",
    "Can you explain why the sky is blue, in simple words, for a child of five years old, please?",
]

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@dataclass(frozen=True)
class Reply:
    text: str
    finish_reason: str | None
    completion_tokens: int
    first_at: float
    last_at: float


@pytest.fixture(scope="module")
def prompts(loaded: LoadedModel) -> list[list[int]]:
    template = loaded.tokenizer.apply_chat_template
    return [list(template([{"role": "user", "content": q}], add_generation_prompt=True)) for q in QUESTIONS]


def engine_for(loaded: LoadedModel, max_batch_size: int, max_wait_ms: float = 2.0) -> LocalEngine:
    deployment = ModelDeployment(name=BUNDLED_MODEL_ID, model=BUNDLED_MODEL_ID)
    return LocalEngine(ModelManager(deployment, lambda _: loaded), 100, max_batch_size, max_wait_ms)


def alone(loaded: LoadedModel, prompt: list[int], params: SamplingParams) -> tuple[str, str | None, int]:
    steps = list(generate_steps(loaded, prompt, params, lambda: False))
    return "".join(step.text for step in steps), steps[-1].finish_reason, steps[-1].completion_tokens


async def collect(
    engine: LocalEngine, prompt: list[int], params: SamplingParams, delay: float = 0.0
) -> Reply:
    await asyncio.sleep(delay)
    parts: list[str] = []
    stamps: list[float] = []
    finish, tokens = None, 0
    async for step in engine.stream(prompt, params):
        parts.append(step.text)
        stamps.append(time.monotonic())
        finish, tokens = step.finish_reason, step.completion_tokens
    return Reply("".join(parts), finish, tokens, stamps[0], stamps[-1])


async def run_together(
    engine: LocalEngine, prompts: list[list[int]], params: list[SamplingParams], stagger_s: float = 0.0
) -> list[Reply]:
    try:
        jobs = (
            collect(engine, p, s, i * stagger_s) for i, (p, s) in enumerate(zip(prompts, params, strict=True))
        )
        return list(await asyncio.gather(*jobs))
    finally:
        await engine.close()


def overlapping(replies: list[Reply]) -> int:
    """The most replies that were streaming at the same moment."""
    return max(sum(r.first_at <= reply.first_at <= r.last_at for r in replies) for reply in replies)


async def test_greedy_replies_run_concurrently_equal_the_replies_run_alone(
    loaded: LoadedModel, prompts: list[list[int]]
) -> None:
    # Different prompt lengths and reply lengths, staggered: rows join a running batch and leave it early.
    params = [
        SamplingParams(max_tokens=24 + 16 * i, temperature=0.0, ignore_eos=True) for i in range(len(prompts))
    ]
    replies = await run_together(engine_for(loaded, max_batch_size=8), prompts, params, stagger_s=0.01)

    expected = [alone(loaded, prompt, p) for prompt, p in zip(prompts, params, strict=True)]
    assert [(r.text, r.finish_reason, r.completion_tokens) for r in replies] == expected
    assert all(reply.finish_reason == "length" for reply in replies)
    assert overlapping(replies) >= 4, "the replies were streamed together, not one after another"


async def test_seeded_sampling_gives_the_same_text_batched_and_alone(
    loaded: LoadedModel, prompts: list[list[int]]
) -> None:
    params = [
        SamplingParams(max_tokens=40, temperature=0.9, top_p=0.9, seed=11, ignore_eos=True),
        SamplingParams(max_tokens=40, temperature=1.2, top_k=20, seed=12, ignore_eos=True),
        SamplingParams(max_tokens=40, temperature=0.7, seed=13, frequency_penalty=0.5, presence_penalty=0.3),
        SamplingParams(max_tokens=40, temperature=0.0, repetition_penalty=1.3, ignore_eos=True),
        SamplingParams(max_tokens=40, temperature=1.0, seed=14, ignore_eos=True),
        SamplingParams(max_tokens=40, temperature=0.8, top_p=0.5, top_k=50, seed=15),
    ]
    replies = await run_together(engine_for(loaded, max_batch_size=8), prompts, params)

    expected = [alone(loaded, prompt, p) for prompt, p in zip(prompts, params, strict=True)]
    assert [(r.text, r.finish_reason, r.completion_tokens) for r in replies] == expected
    assert len({reply.text for reply in replies}) == len(replies)


async def test_each_row_stops_on_its_own_stop_string_eos_or_max_tokens(
    loaded: LoadedModel, prompts: list[list[int]]
) -> None:
    stop_at = alone(loaded, prompts[2], SamplingParams(max_tokens=30, temperature=0.0, ignore_eos=True))[0][
        8:11
    ]
    params = [
        SamplingParams(max_tokens=200, temperature=0.0),  # ends at the model's EOS
        SamplingParams(max_tokens=3, temperature=0.0, ignore_eos=True),
        SamplingParams(max_tokens=30, temperature=0.0, ignore_eos=True, stop=(stop_at,)),
        SamplingParams(max_tokens=60, temperature=0.0, ignore_eos=True),
    ]
    replies = await run_together(engine_for(loaded, max_batch_size=4), prompts[:4], params)

    expected = [alone(loaded, prompt, p) for prompt, p in zip(prompts, params, strict=False)]
    assert [(r.text, r.finish_reason, r.completion_tokens) for r in replies] == expected
    eos, short, stopped, long = replies
    assert eos.finish_reason == "stop" and eos.completion_tokens < 200
    assert short.completion_tokens == 3 and short.finish_reason == "length"
    assert stopped.finish_reason == "stop" and stop_at not in stopped.text and stopped.completion_tokens < 30
    assert long.completion_tokens == 60


async def test_no_more_than_max_batch_size_replies_stream_at_once(
    loaded: LoadedModel, prompts: list[list[int]]
) -> None:
    params = [SamplingParams(max_tokens=16, temperature=0.0, ignore_eos=True)] * 5
    replies = await run_together(engine_for(loaded, max_batch_size=2), prompts[:5], params)

    assert overlapping(replies) == 2
    expected = [alone(loaded, prompt, p) for prompt, p in zip(prompts, params, strict=False)]
    assert [(r.text, r.finish_reason, r.completion_tokens) for r in replies] == expected


async def test_a_client_that_leaves_frees_its_slot_for_a_waiting_request(
    loaded: LoadedModel, prompts: list[list[int]]
) -> None:
    engine = engine_for(loaded, max_batch_size=2)
    long = SamplingParams(max_tokens=400, temperature=0.0, ignore_eos=True)
    try:
        leaving = cast(AsyncGenerator[Step, None], engine.stream(prompts[0], long))
        await anext(leaving)  # streaming; the other slot goes to `staying`
        staying = asyncio.create_task(collect(engine, prompts[1], long))
        await eventually(lambda: engine.pending == 2)
        waiting = asyncio.create_task(
            collect(engine, prompts[2], SamplingParams(max_tokens=4, temperature=0.0))
        )
        await eventually(lambda: engine.pending == 3)
        await leaving.aclose()  # the client disconnects
        left_at = time.monotonic()
        served = await asyncio.wait_for(waiting, timeout=30)
        assert not staying.done(), "the waiting request was served while both slots were still taken"
        assert served.first_at - left_at < 1.0
        assert engine.pending == 1  # only `staying` is still generating
        await staying
    finally:
        await engine.close()
    assert engine.pending == 0


async def test_the_event_loop_keeps_running_during_a_batch(
    loaded: LoadedModel, prompts: list[list[int]]
) -> None:
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    params = [SamplingParams(max_tokens=48, temperature=0.0, ignore_eos=True)] * len(prompts)
    await run_together(engine_for(loaded, max_batch_size=8), prompts, params)
    done.set()
    await ticking
    assert max(gaps) < 0.25


class RemoteCodeModel(torch.nn.Module):
    """Stands for a ``trust_remote_code`` model: not one of transformers' own classes, so its cache
    layout is unknown to the batch and it must run one request at a time, unchanged."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.inner = model
        self.config = model.config

    def forward(self, **kwargs: Any) -> Any:
        return self.inner(**kwargs)


async def test_a_model_whose_cache_cannot_be_batched_still_serves_one_at_a_time(
    loaded: LoadedModel, prompts: list[list[int]]
) -> None:
    remote = replace(loaded, model=RemoteCodeModel(loaded.model))
    params = [SamplingParams(max_tokens=12, temperature=0.0, ignore_eos=True)] * 3
    replies = await run_together(engine_for(remote, max_batch_size=8), prompts[:3], params)

    assert overlapping(replies) == 1
    expected = [alone(loaded, prompt, p) for prompt, p in zip(prompts, params, strict=False)]
    assert [(r.text, r.finish_reason, r.completion_tokens) for r in replies] == expected


def test_batch_settings_are_validated() -> None:
    assert EngineSettings().max_batch_size == 16
    with pytest.raises(ValidationError):
        EngineSettings(max_batch_size=0)
    with pytest.raises(ValidationError):
        EngineSettings(max_wait_ms=-1)
