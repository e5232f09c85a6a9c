"""engine/tokenize.py: long texts encoded a slice at a time give exactly the ids of one encoding
(the bundled byte-level BPE), in a fraction of the memory; other tokenizers are encoded whole."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from llmserve.engine import tokenize
from llmserve.engine.loader import LoadedModel
from llmserve.providers.local import render_prompt_ids
from llmserve.types import ChatInput, ChatMessage, TextInput

PIECES = [
    "hello",
    "world",
    " ",
    "  ",
    "   ",
    "\n",
    "\n\n",
    "\t",
    " \n ",
    "'s",
    "'ll",
    "don't",
    "42",
    "3.14",
    "你好",
    "世界",
    "😀",
    "é",
    "naïve",
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "!!",
    "...",
    "\u00a0",
    "\u2003",
    "\u200b",
    "x=y+1;",
    "https://example.com/a?b=c",
    "  leading",
    "trailing  ",
]


def _whole(tokenizer: Any, text: str, add_special_tokens: bool) -> list[int]:
    return list(tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])


@pytest.mark.parametrize("seed", range(6))
def test_sliced_ids_equal_the_whole_texts_ids(
    loaded: LoadedModel, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    monkeypatch.setattr(tokenize, "SLICE_CHARS", 40)  # hundreds of cuts in a few KB
    rng = random.Random(seed)
    text = "".join(rng.choice(PIECES) + rng.choice(["", " ", " ", "  "]) for _ in range(1500))
    for specials in (True, False):
        expected = _whole(loaded.tokenizer, text, specials)
        assert tokenize.encode_ids(loaded.tokenizer, text, add_special_tokens=specials) == expected


def test_the_bundled_tokenizer_is_sliced_and_a_normalizing_one_is_not(loaded: LoadedModel) -> None:
    assert tokenize._decide(loaded.tokenizer)

    class Slow:  # a slow (pure Python) tokenizer has no backend to slice with
        pass

    assert not tokenize._decide(Slow())


def test_a_chat_is_rendered_and_counted_as_apply_chat_template_does(loaded: LoadedModel) -> None:
    messages = [ChatMessage("system", "Be brief. " * 4000), ChatMessage("user", "Hi there " * 5000)]
    expected = loaded.tokenizer.apply_chat_template(
        [{"role": m.role, "content": m.content} for m in messages], add_generation_prompt=True, tokenize=True
    )
    assert render_prompt_ids(loaded, ChatInput(tuple(messages))) == list(expected)


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_a_megabyte_prompt_costs_tens_of_megabytes_not_hundreds(loaded: LoadedModel) -> None:
    # Unsliced, the 1.6 M tokens of 3.9 MB peaked at +650 MB (their Encoding); sliced, the ids
    # list (about 36 bytes a token) is most of it. RSS is sampled while it runs: the process's
    # lifetime peak (ru_maxrss) may already be higher from earlier tests.
    text = "hello world " * 325_000
    before = _rss_mib()
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _rss_mib())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        ids = render_prompt_ids(loaded, TextInput(text))
    finally:
        done.set()
        sampler.join()
    assert len(ids) > 500_000
    assert peak - before < 150, f"+{peak - before:.0f} MiB"
