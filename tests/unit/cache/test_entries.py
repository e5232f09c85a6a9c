"""Stored answers survive the trip through bytes, tool calls and usage included."""

from __future__ import annotations

import pytest

from llmserve.cache.entries import CachedAnswer
from llmserve.types import Choice, Completion, Usage

CALL = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}


def test_answer_round_trip_keeps_choices_tool_calls_and_usage() -> None:
    completion = Completion(
        [
            Choice(0, "Sunny.", "stop"),
            Choice(1, "", "tool_calls", tool_calls=(CALL,)),
            Choice(2, "é…", "length"),
        ],
        Usage(12, 34, estimated=True),
    )
    answer = CachedAnswer(completion, "gpt-small", 1_700_000_000.5)
    assert CachedAnswer.from_bytes(answer.to_bytes()) == answer


def test_new_answers_are_stamped_now() -> None:
    answer = CachedAnswer.new(Completion([Choice(0, "x", "stop")], Usage(1, 1)), "g")
    assert answer.created > 1_700_000_000


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"{}",
        b'{"format": 99}',
        b'{"format": 1, "model": "g", "created": 1, "choices": [{}]}',
    ],
)
def test_unreadable_bytes_raise_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        CachedAnswer.from_bytes(data)
